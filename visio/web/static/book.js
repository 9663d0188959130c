// The booking form: the usager's phone is checked as it is typed (the server's rule, in
// the chosen country), a Dutch-speaking operator proposes Dutch messages, and after a
// refused form the focus goes to the first error.
const phone = document.getElementById("phone");
const phoneCountry = document.getElementById("phone_country");
const hint = document.getElementById("phone-check");
let timer = null;
let asked = 0;

async function check() {
  const number = phone.value.trim();
  const mine = ++asked;
  if (!number) { hint.textContent = ""; phone.removeAttribute("aria-invalid"); return; }
  const country = phoneCountry ? phoneCountry.value : "FR";
  const query = new URLSearchParams({phone: number, number, country});
  const response = await fetch(`/web/phone?${query}`, {credentials: "same-origin"});
  if (mine !== asked || !response.ok) return;
  const result = await response.json();
  // The server's sentences: validity, and that a landline gets no SMS.
  hint.textContent = [result.message, result.warning].filter(Boolean).join(" ");
  hint.className = result.ok ? "hint ok" : "hint error";
  if (result.ok) phone.removeAttribute("aria-invalid");
  else phone.setAttribute("aria-invalid", "true");
  hint.dataset.valid = String(result.ok);
}

if (phone) {
  phone.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(check, 250); });
  if (phoneCountry) phoneCountry.addEventListener("change", check);
  if (phone.value) check();
}

// The messages' language follows the chosen slot's operator until the agent picks one.
const language = document.getElementById("language");
if (language) {
  let picked = false;
  language.addEventListener("change", () => { picked = true; });
  for (const radio of document.querySelectorAll("input[name=slot]")) {
    radio.addEventListener("change", () => {
      const spoken = (radio.dataset.languages || "").split(" ");
      if (picked || !radio.checked) return;
      language.value = spoken.includes("nl") && !spoken.includes("fr") ? "nl" : "fr";
    });
  }
}

// A second click while the booking is sent changes nothing (the key makes it safe anyway).
const form = document.getElementById("booking");
if (form) {
  form.addEventListener("submit", () => {
    const button = document.getElementById("book-button");
    setTimeout(() => button.setAttribute("aria-disabled", "true"), 0);
  });
}

// After a refusal: the field it names, else the warning itself.
const first = document.querySelector("#booking [aria-invalid=true]") ||
  document.getElementById("duplicate") || document.getElementById("refusal");
if (first) first.focus();
