// The desk's keyboard shortcuts: j/k move between stories, r/n/s press the
// current story's relevant / not relevant / star button. No inline script
// anywhere (the CSP forbids it): this file is the only script of the desk.
(function () {
  "use strict";
  var current = -1;

  function stories() {
    return Array.prototype.slice.call(document.querySelectorAll(".story"));
  }

  function select(index) {
    var all = stories();
    if (!all.length) { return; }
    current = Math.max(0, Math.min(index, all.length - 1));
    all.forEach(function (el, i) { el.classList.toggle("current", i === current); });
    all[current].focus();
    all[current].scrollIntoView({ block: "nearest" });
  }

  function press(key) {
    var all = stories();
    if (current < 0 || current >= all.length) { return; }
    var button = all[current].querySelector('button[data-shortcut="' + key + '"]');
    if (button) { button.click(); }
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" ||
                   target.tagName === "SELECT" || target.isContentEditable)) { return; }
    if (event.key === "j") { select(current + 1); }
    else if (event.key === "k") { select(current - 1); }
    else if (event.key === "r" || event.key === "n" || event.key === "s") { press(event.key); }
    else { return; }
    event.preventDefault();
  });
}());
