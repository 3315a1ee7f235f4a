// ocireg pages: the only script. Filter-as-you-type and copyable pull commands; every page
// works without it (the filter is a plain GET form).
"use strict";
(function () {
  var input = document.querySelector("[data-live-filter]");
  if (input) {
    var target = document.querySelector(input.getAttribute("data-live-filter"));
    var timer = null, seq = 0;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var mine = ++seq;
        var url = "/" + (input.value ? "?q=" + encodeURIComponent(input.value) : "");
        target.classList.add("loading");
        target.setAttribute("aria-busy", "true");
        fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
          .then(function (r) { return r.text(); })
          .then(function (html) {
            if (mine !== seq) return; // a later keystroke won
            var doc = new DOMParser().parseFromString(html, "text/html");
            var fresh = doc.querySelector(input.getAttribute("data-live-filter"));
            if (fresh) target.innerHTML = fresh.innerHTML;
            history.replaceState(null, "", url);
          })
          .catch(function () {
            if (mine === seq) target.innerHTML = '<p class="error" role="alert">Could not reach the registry. Try again.</p>';
          })
          .finally(function () {
            if (mine === seq) { target.classList.remove("loading"); target.removeAttribute("aria-busy"); }
          });
      }, 120);
    });
  }
  document.addEventListener("click", function (e) {
    var el = e.target;
    if (!el.classList || !el.classList.contains("copy")) return;
    el.select();
    if (navigator.clipboard) navigator.clipboard.writeText(el.value).catch(function () {});
  });
  document.addEventListener("focusin", function (e) {
    if (e.target.classList && e.target.classList.contains("copy")) e.target.select();
  });
})();
