// The verify form: show only the parameters of the chosen kind, and only the categories of the chosen column.
// Without this script every field shows, each with help text naming the kinds that use it.
(function () {
  "use strict";
  function ready(fn) { if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn); }
  ready(function () {
    var form = document.querySelector(".verify-form");
    var data = document.getElementById("kind-fields");
    if (!form || !data) return;
    document.documentElement.classList.add("js");
    var kindFields = JSON.parse(data.textContent);
    var kind = form.querySelector("[data-kind-select]");
    function showParams() {
      var wanted = kindFields[kind.value] || [];
      form.querySelectorAll("[data-param]").forEach(function (box) {
        var name = box.getAttribute("data-param");
        var hasError = box.querySelector(".field-error");
        box.classList.toggle("hidden", wanted.indexOf(name) < 0 && !hasError);
      });
    }
    function filterLevels(select) {
      var source = form.querySelector("[name=" + select.getAttribute("data-levels-of") + "]");
      if (!source) return;
      select.querySelectorAll("optgroup").forEach(function (group) {
        var match = !source.value || group.label === source.value;
        group.hidden = !match;
        group.disabled = !match;
      });
    }
    kind.addEventListener("change", showParams);
    showParams();
    form.querySelectorAll("[data-levels-of]").forEach(function (select) {
      var source = form.querySelector("[name=" + select.getAttribute("data-levels-of") + "]");
      if (source) source.addEventListener("change", function () { filterLevels(select); });
      filterLevels(select);
    });
  });
})();
