// The upload page's draft step without losing the chosen file: "Draft a schema" posts the form with
// fetch and copies the drafted schema (and any messages) from the answer into this page, so the file
// input keeps its file and the custodian sends it again with the reviewed schema. Without script the
// server's page shows the draft and asks for the file again; so does this script when the answer is not
// the upload page (an error page, a network failure). Nothing is kept on the server between steps.
// data-enhanced on the form says the script has taken over the button (a browser test waits for it).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-upload]");
    if (!form || !window.fetch || !window.FormData) { return; }
    var draftButton = form.querySelector("button[name=step][value=draft]");
    if (!draftButton) { return; }
    var plain = false;  // true once falling back to the server's own draft page
    function submitPlainly() {
      plain = true;
      draftButton.disabled = false;  // a disabled submitter would not send step=draft
      if (form.requestSubmit) { form.requestSubmit(draftButton); } else { draftButton.click(); }
    }
    draftButton.addEventListener("click", function (event) {
      if (plain) { return; }
      event.preventDefault();
      var body = new FormData(form);
      body.set("step", "draft");
      draftButton.disabled = true;
      fetch(form.action, { method: "POST", body: body, credentials: "same-origin" })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          var answer = new DOMParser().parseFromString(html, "text/html");
          var drafted = answer.querySelector("form[data-upload]");
          if (!drafted) { submitPlainly(); return; }
          var schema = drafted.querySelector("textarea[name=schema]");
          form.querySelector("textarea[name=schema]").value = schema ? schema.value : "";
          // field messages from the answer (e.g. the file is not a CSV)
          form.querySelectorAll(".field-error, .form-errors, .draft-note").forEach(function (el) { el.remove(); });
          drafted.querySelectorAll(".field").forEach(function (field, index) {
            var mine = form.querySelectorAll(".field")[index];
            if (!mine) { return; }
            mine.classList.toggle("has-error", field.classList.contains("has-error"));
            field.querySelectorAll(".field-error").forEach(function (error) { mine.appendChild(error.cloneNode(true)); });
          });
          var note = drafted.querySelector(".draft-note");
          if (note) {
            note = note.cloneNode(true);
            note.textContent = "A draft schema was inferred from the file: review it below, then take the cohort into custody (the file stays chosen).";
            form.insertBefore(note, form.firstChild);
          }
          form.setAttribute("data-drafted", "true");
        })
        .catch(submitPlainly)
        .finally(function () { draftButton.disabled = false; });
    });
    form.setAttribute("data-enhanced", "true");
  });
})();
