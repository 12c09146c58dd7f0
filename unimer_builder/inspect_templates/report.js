// Filters of the clip table on the build page (by verdict, AU and subject); plain DOM, no libraries.
(function () {
  "use strict";
  var table = document.getElementById("clip-table");
  if (!table) { return; }
  var selects = {
    verdicts: document.getElementById("f-verdict"),
    aus: document.getElementById("f-au"),
    subject: document.getElementById("f-subject")
  };
  var count = document.getElementById("f-count");
  var rows = Array.prototype.slice.call(table.querySelectorAll("tr.clip-row"));

  function matches(row, key, wanted) {
    if (!wanted) { return true; }
    var have = (row.getAttribute("data-" + key) || "").split(" ");
    return key === "subject" ? row.getAttribute("data-subject") === wanted : have.indexOf(wanted) >= 0;
  }

  function apply() {
    var shown = 0;
    rows.forEach(function (row) {
      var ok = Object.keys(selects).every(function (key) { return matches(row, key, selects[key].value); });
      row.classList.toggle("hidden", !ok);
      if (ok) { shown += 1; }
    });
    count.textContent = shown + " of " + rows.length + " clips";
  }

  Object.keys(selects).forEach(function (key) { selects[key].addEventListener("change", apply); });
  apply();
}());
