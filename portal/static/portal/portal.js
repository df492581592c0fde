// The portal's one script (no framework, no CDN). Live updates by polling a JSON address:
//
//   <div data-poll="/custody/runs/7/progress.json" data-poll-interval="1000">
//     <div class="progress"><div class="bar" data-progress></div></div>
//     <span data-field="status"></span> <span data-field="epoch"></span>
//   </div>
//
// The JSON gives {"fraction": 0..1, "done": bool, "fields": {name: text}, "reload": bool}. Each
// [data-field=name] gets fields[name] as its text; [data-progress] gets its width (and aria values)
// from fraction. Polling stops when done; with "reload" the page reloads once to show the result.
(function () {
  "use strict";

  function apply(root, data) {
    var fraction = Math.max(0, Math.min(1, Number(data.fraction) || 0));
    root.querySelectorAll("[data-progress]").forEach(function (bar) {
      bar.style.width = (fraction * 100).toFixed(1) + "%";
      var holder = bar.parentElement;
      holder.setAttribute("role", "progressbar");
      holder.setAttribute("aria-valuemin", "0");
      holder.setAttribute("aria-valuemax", "100");
      holder.setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
    });
    var fields = data.fields || {};
    Object.keys(fields).forEach(function (name) {
      root.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) {
        el.textContent = fields[name] === null ? "" : String(fields[name]);
      });
    });
    root.setAttribute("data-fraction", fraction.toFixed(4));
  }

  function poll(root) {
    var url = root.getAttribute("data-poll");
    var interval = Number(root.getAttribute("data-poll-interval")) || 1000;
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data) { setTimeout(tick, interval * 3); return; }
          apply(root, data);
          if (data.done) {
            root.setAttribute("data-done", "true");
            if (data.reload) { window.location.reload(); }
            return;
          }
          setTimeout(tick, interval);
        })
        .catch(function () { setTimeout(tick, interval * 3); });
    }
    tick();
  }

  // A form with [data-confirm] asks before it is sent (publish with an override, cancel a run).
  function confirmForms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(poll);
    confirmForms();
  });
})();
