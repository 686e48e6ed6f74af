// Kervan: small, purposeful scripts — link pickers, date presets, line editor, kanban.
(function () {
  "use strict";

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
  // Empty filter inputs are left out of the URL.
  var filters = document.getElementById("filters");
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
              error.textContent = res.body.error ? res.body.error.reason : "Refused";
              error.classList.remove("d-none");
            }
          });
      });
    });
    function updateCounts() {
      board.querySelectorAll(".kv-column").forEach(function (c) {
        var badge = c.querySelector(".kv-count");
        if (badge && !/\+$/.test(badge.textContent)) badge.textContent = c.querySelectorAll(".kv-card").length;
      });
    }
  }
})();
