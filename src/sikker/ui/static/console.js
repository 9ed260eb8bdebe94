// Sikker console: progressive enhancement only. Every form works without this script.
"use strict";
(function () {
  var HIDE_AFTER_MS = 30000;

  // Reveal: POST with the CSRF token in a header, show the value, hide it again after 30 s.
  var form = document.querySelector("form[data-reveal]");
  if (form) {
    var box = document.getElementById("revealed");
    var out = document.getElementById("revealed-value");
    var timer = null;
    var hide = function () {
      out.textContent = "";
      box.hidden = true;
      if (timer) { clearTimeout(timer); timer = null; }
    };
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var csrf = form.querySelector("input[name=csrf]").value;
      fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRF-Token": csrf },
      }).then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      }).then(function (result) {
        if (!result.ok) { out.textContent = "Refused: " + result.body.error; box.hidden = false; return; }
        var body = result.body;
        out.textContent = body.fields ? Object.keys(body.fields).map(function (k) {
          return k + "=" + body.fields[k];
        }).join("\n") : body.value;
        box.hidden = false;
        if (timer) { clearTimeout(timer); }
        timer = setTimeout(hide, HIDE_AFTER_MS);
      }).catch(function () { out.textContent = "The server could not be reached."; box.hidden = false; });
    });
    document.getElementById("hide").addEventListener("click", hide);
    document.getElementById("copy").addEventListener("click", function () {
      if (navigator.clipboard) { navigator.clipboard.writeText(out.textContent); }
    });
  }

  // Confirm destructive buttons.
  document.querySelectorAll("button[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });

  // Structured secrets: add more field rows.
  document.querySelectorAll("fieldset[data-fields]").forEach(function (set) {
    var add = set.querySelector(".add-field");
    add.hidden = false;
    add.addEventListener("click", function () {
      var rows = set.querySelectorAll(".field-row");
      var row = rows[rows.length - 1].cloneNode(true);
      var n = rows.length;
      row.querySelectorAll("input").forEach(function (input) { input.value = ""; input.id = input.id.replace(/\d+$/, n); });
      row.querySelectorAll("label").forEach(function (label) {
        label.htmlFor = label.htmlFor.replace(/\d+$/, n);
        label.textContent = label.textContent.replace(/\d+$/, n + 1);
      });
      set.insertBefore(row, add);
    });
  });
})();
