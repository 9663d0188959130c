// The agenda: shows live when the usager has arrived (the kiosk opened the call page).
const script = document.querySelector('script[src="/static/agenda.js"]');
const live = document.getElementById("arrivals");
const ids = [...document.querySelectorAll("[data-arrived]")].map((el) => el.dataset.arrived);
const known = new Set();

async function poll() {
  if (ids.length === 0) return;
  try {
    const response = await fetch(`/web/presence?ids=${ids.join(",")}`,
                                 {credentials: "same-origin"});
    if (response.ok) {
      const {present} = await response.json();
      for (const id of ids) {
        const badge = document.querySelector(`[data-arrived="${id}"]`);
        const here = present.includes(id);
        badge.hidden = !here;
        if (here && !known.has(id)) live.textContent = script.dataset.arrivedText;
        if (here) known.add(id); else known.delete(id);
      }
    }
  } finally {
    setTimeout(poll, 2000);
  }
}
poll();
