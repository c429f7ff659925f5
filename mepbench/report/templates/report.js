(function () {
  "use strict";
  function sortValue(cell, numeric) {
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (!numeric) { return raw.toLowerCase(); }
    var value = parseFloat(raw);
    return isNaN(value) ? null : value;
  }
  function sortTable(table, th) {
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute("data-type") === "num";
    var current = th.getAttribute("aria-sort");
    var descending = current ? current === "ascending" : numeric;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = sortValue(a.cells[index], numeric), y = sortValue(b.cells[index], numeric);
      if (x === y) { return 0; }
      if (x === null || x === "") { return 1; }
      if (y === null || y === "") { return -1; }
      return (x < y ? -1 : 1) * (descending ? -1 : 1);
    });
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    rows.forEach(function (row) { body.appendChild(row); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th) {
      th.addEventListener("click", function () { sortTable(table, th); });
    });
  });
  var filter = document.getElementById("sample-filter");
  var wrong = document.getElementById("only-wrong");
  var count = document.getElementById("sample-count");
  function applyFilter() {
    var needle = filter.value.trim().toLowerCase(), shown = 0;
    var samples = document.querySelectorAll("details.sample");
    samples.forEach(function (el) {
      var ok = el.getAttribute("data-ok");
      var visible = el.getAttribute("data-search").toLowerCase().indexOf(needle) !== -1 &&
        (!wrong.checked || ok === "no" || ok === "fail");
      el.hidden = !visible;
      shown += visible ? 1 : 0;
    });
    count.textContent = shown + " of " + samples.length + " shown";
  }
  if (filter && wrong && count) {
    filter.addEventListener("input", applyFilter);
    wrong.addEventListener("change", applyFilter);
    applyFilter();
  }
  if (location.hash) {
    var target = document.getElementById(location.hash.slice(1));
    if (target && target.tagName === "DETAILS") { target.open = true; target.scrollIntoView(); }
  }
}());
