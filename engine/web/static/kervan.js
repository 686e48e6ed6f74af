// Kervan: small, purposeful scripts — link pickers, date presets, line editor, kanban.
(function () {
  "use strict";

  // Numbers written by scripts use the page's digits (Persian pages show ۰–۹).
  var persian = document.documentElement.lang === "fa";
  function localDigits(value) {
    var text = String(value);
    return persian ? text.replace(/[0-9]/g, function (d) { return "۰۱۲۳۴۵۶۷۸۹"[d]; }) : text;
  }

  // Date preset "custom" shows the from/to inputs.
  document.querySelectorAll(".kv-date-preset").forEach(function (select) {
    select.addEventListener("change", function () {
      var range = document.querySelector('[data-range="' + select.dataset.field + '"]');
      if (!range) return;
      var custom = select.value === "custom";
      range.classList.toggle("d-none", !custom);
      if (custom) select.name = ""; else select.name = select.dataset.field + "__preset";
      if (!custom) range.querySelectorAll("input").forEach(function (i) { i.value = ""; });
    });
    if (select.value === "custom") select.name = "";
  });
  // Jalali dates typed in a Persian filter (1405/09/01, either digit set) go to the server
  // as Gregorian ISO dates, found with the browser's own Persian calendar.
  var persianCalendar = window.Intl && new Intl.DateTimeFormat("en-u-ca-persian-nu-latn",
    {year: "numeric", month: "numeric", day: "numeric", timeZone: "UTC"});
  function jalaliOf(date) {
    var parts = {};
    persianCalendar.formatToParts(date).forEach(function (p) { parts[p.type] = parseInt(p.value, 10); });
    return [parts.year, parts.month, parts.day];
  }
  function gregorianOf(text) {
    var ascii = text.replace(/[۰-۹]/g, function (d) { return "۰۱۲۳۴۵۶۷۸۹".indexOf(d); })
                    .replace(/[٠-٩]/g, function (d) { return "٠١٢٣٤٥٦٧٨٩".indexOf(d); });
    var m = /^\s*(\d{4})\s*[\/.-]\s*(\d{1,2})\s*[\/.-]\s*(\d{1,2})\s*$/.exec(ascii);
    if (!m || !persianCalendar) return null;
    var y = +m[1], mo = +m[2], d = +m[3];
    if (y >= 1700) return ascii.trim().replace(/[\/.]/g, "-");  // already Gregorian
    var date = new Date(Date.UTC(y + 621, 2, 20 + (mo <= 6 ? (mo - 1) * 31 : 186 + (mo - 7) * 30) + d));
    for (var i = 0; i < 4; i++) {
      var j = jalaliOf(date), off = (y - j[0]) * 365 + (mo - j[1]) * 30 + (d - j[2]);
      if (!off) return date.toISOString().slice(0, 10);
      date.setUTCDate(date.getUTCDate() + off);
    }
    return null;  // no such day (1404/12/30): the filter is left out
  }
  var filters = document.getElementById("filters");
  if (filters) filters.addEventListener("submit", function () {
    filters.querySelectorAll(".kv-jalali-filter").forEach(function (input) {
      var target = filters.querySelector('input[name="' + input.dataset.target + '"]');
      if (target) target.value = input.value.trim() ? (gregorianOf(input.value) || "") : "";
    });
  });
  // Empty filter inputs are left out of the URL.
  if (filters) filters.addEventListener("submit", function () {
    filters.querySelectorAll("input, select").forEach(function (el) {
      if (!el.value && el.name) el.name = "";
    });
  });

  // Link pickers: search-as-you-type against /<entity>/lookup.
  function bindPicker(picker) {
    var hidden = picker.querySelector('input[type="hidden"]');
    var text = picker.querySelector(".kv-link-text");
    var menu = picker.querySelector(".kv-link-menu");
    var timer = null;
    function close() { menu.innerHTML = ""; }
    text.addEventListener("input", function () {
      if (!text.value) { hidden.value = ""; }
      clearTimeout(timer);
      timer = setTimeout(function () {
        fetch(picker.dataset.lookup + "?q=" + encodeURIComponent(text.value), {credentials: "same-origin"})
          .then(function (r) { return r.json(); })
          .then(function (items) {
            close();
            items.forEach(function (item) {
              var a = document.createElement("button");
              a.type = "button";
              a.className = "list-group-item list-group-item-action py-1";
              a.textContent = item.title;
              a.addEventListener("mousedown", function (ev) {
                ev.preventDefault();
                hidden.value = item.id; text.value = item.title; close();
              });
              menu.appendChild(a);
            });
          });
      }, 200);
    });
    text.addEventListener("blur", function () { setTimeout(close, 150); });
  }
  document.querySelectorAll(".kv-link-picker").forEach(bindPicker);

  // Line editor: add and remove child lines.
  document.querySelectorAll(".kv-add-line").forEach(function (button) {
    var card = button.closest("fieldset");
    var table = card.querySelector(".kv-lines-editor tbody");
    var template = card.querySelector(".kv-line-template");
    button.addEventListener("click", function () {
      var index = Date.now() % 100000000;
      var html = template.innerHTML.replace(/__i__/g, String(index));
      table.insertAdjacentHTML("beforeend", html);
      table.lastElementChild.querySelectorAll(".kv-link-picker").forEach(bindPicker);
    });
  });
  document.addEventListener("click", function (ev) {
    var remove = ev.target.closest(".kv-remove-line");
    if (remove) remove.closest("tr").remove();
  });

  // Kanban: drag a card to another column; the server decides, a refusal snaps back.
  var board = document.querySelector(".kv-board");
  if (board) {
    var dragged = null, origin = null;
    board.addEventListener("dragstart", function (ev) {
      dragged = ev.target.closest(".kv-card");
      if (!dragged) return;
      origin = dragged.parentElement;
      dragged.classList.add("kv-dragging");
      ev.dataTransfer.setData("text/plain", dragged.dataset.id);
    });
    board.addEventListener("dragend", function () { if (dragged) dragged.classList.remove("kv-dragging"); });
    board.querySelectorAll(".kv-column").forEach(function (column) {
      column.addEventListener("dragover", function (ev) { ev.preventDefault(); column.classList.add("kv-over"); });
      column.addEventListener("dragleave", function () { column.classList.remove("kv-over"); });
      column.addEventListener("drop", function (ev) {
        ev.preventDefault();
        column.classList.remove("kv-over");
        if (!dragged || column.contains(dragged)) return;
        var card = dragged, from = origin;
        column.querySelector(".kv-cards").prepend(card);
        var url = board.dataset.moveUrl.replace(/\/0\/move$/, "/" + card.dataset.id + "/move");
        var error = document.getElementById("kv-board-error");
        fetch(url, {method: "POST", credentials: "same-origin",
                    headers: {"Content-Type": "application/json", "X-CSRFToken": board.dataset.csrf},
                    body: JSON.stringify({to: column.dataset.stage, version: card.dataset.version})})
          .then(function (r) { return r.json().then(function (body) { return {ok: r.ok, body: body}; }); })
          .then(function (res) {
            if (res.ok) {
              card.dataset.version = res.body.version;
              error.classList.add("d-none");
              updateCounts();
            } else {
              from.querySelector(".kv-cards") ? from.querySelector(".kv-cards").prepend(card) : from.prepend(card);
              error.textContent = res.body.error ? res.body.error.reason : board.dataset.refused;
              error.classList.remove("d-none");
            }
          });
      });
    });
    function updateCounts() {
      board.querySelectorAll(".kv-column").forEach(function (c) {
        var badge = c.querySelector(".kv-count");
        if (badge && !/\+$/.test(badge.textContent)) badge.textContent = localDigits(c.querySelectorAll(".kv-card").length);
      });
    }
  }
})();

// Live totals of a lined document: the server computes them with the saving rules.
(function () {
  "use strict";
  var panel = document.querySelector(".kv-live-totals");
  if (!panel) return;
  var form = panel.closest("form"), timer = null;
  function refresh() {
    var data = new FormData(form);
    fetch(panel.dataset.url, {method: "POST", body: data, credentials: "same-origin",
                              headers: {"X-CSRFToken": data.get("csrf_token")}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (totals) {
        if (!totals) return;
        ["subtotal", "discount_total", "vat_total", "grand_total"].forEach(function (part) {
          var cell = panel.querySelector('[data-total="' + part + '"]');
          if (cell) cell.textContent = totals[part];
        });
        var rows = form.querySelectorAll(".kv-lines-editor tbody tr");
        rows.forEach(function (row, index) {
          var cell = row.querySelector('[data-computed]');
          if (cell && totals.lines[index] !== undefined) cell.textContent = totals.lines[index];
        });
      });
  }
  form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 300); });
  form.addEventListener("change", function () { clearTimeout(timer); timer = setTimeout(refresh, 100); });
  form.addEventListener("click", function (ev) {
    if (ev.target.closest(".kv-remove-line")) setTimeout(refresh, 50);
  });
})();
