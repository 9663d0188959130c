// The booking form: the usager's phone is checked as it is typed (the server's rule).
const phone = document.getElementById("phone");
const hint = document.getElementById("phone-check");
let timer = null;
let asked = 0;

async function check() {
  const number = phone.value.trim();
  const mine = ++asked;
  if (!number) { hint.textContent = ""; phone.removeAttribute("aria-invalid"); return; }
  const response = await fetch(`/web/phone?number=${encodeURIComponent(number)}`,
                               {credentials: "same-origin"});
  if (mine !== asked || !response.ok) return;
  const result = await response.json();
  hint.textContent = result.message;
  hint.className = result.ok ? "hint ok" : "hint error";
  if (result.ok) phone.removeAttribute("aria-invalid");
  else phone.setAttribute("aria-invalid", "true");
  hint.dataset.valid = String(result.ok);
}

if (phone) {
  phone.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(check, 250); });
  if (phone.value) check();
}

// A second click while the booking is sent changes nothing (the key makes it safe anyway).
const form = document.getElementById("booking");
if (form) {
  form.addEventListener("submit", () => {
    const button = document.getElementById("book-button");
    setTimeout(() => button.setAttribute("aria-disabled", "true"), 0);
  });
}
