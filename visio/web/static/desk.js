// After a refused form, focus goes to the first field in error (else to the summary),
// so keyboard and screen-reader users land where the correction is needed.
const first = document.querySelector("[data-first-error]") ||
              document.querySelector("[data-focus]");
if (first) first.focus();
