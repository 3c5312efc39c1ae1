// The inbox, live (R5.7): the list, the thread and the window countdown follow what happens
// without a reload. Every action stays a plain form; this only refreshes what is shown.
(function () {
  "use strict";

  var refreshing = false;
  var again = false;
  var timer = null;

  // Whether someone is using a part of the page: focus inside it, or a field or choice they
  // changed. Such a part is not redrawn under their hands.
  function inUse(el) {
    if (el.contains(document.activeElement) && document.activeElement !== document.body) return true;
    return Array.prototype.some.call(el.querySelectorAll("textarea, input:not([type=hidden]), select"), function (field) {
      if (field.tagName === "SELECT") {
        var chosen = field.options[field.selectedIndex];
        return chosen !== undefined && !chosen.defaultSelected && field.selectedIndex !== 0;
      }
      return field.value !== field.defaultValue;
    });
  }

  // Swaps in the parts of a freshly rendered page that may have changed, except those in use.
  function swap(fresh) {
    ["inbox-tabs", "conversation-list", "thread-head", "thread-messages", "composer"].forEach(function (id) {
      var now = document.getElementById(id);
      var next = fresh.getElementById(id);
      if (!now || !next) return;
      if ((id === "thread-head" || id === "composer") && inUse(now)) return;
      now.replaceWith(next);
      if (id === "composer") wireComposer();
    });
    startCountdown();
    scrollThread();
    markRead();
  }

  function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html) swap(new DOMParser().parseFromString(html, "text/html"));
      })
      .catch(function () {})
      .then(function () {
        refreshing = false;
        if (again) { again = false; soon(); }
      });
  }

  function soon() {
    if (timer) clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  }

  function listen() {
    if (!window.EventSource) return;
    var source = new EventSource("/api/v1/events/stream");
    ["message.created", "message.status", "conversation.updated", "lagged"].forEach(function (name) {
      source.addEventListener(name, soon);
    });
    // The browser reconnects by itself; what was missed meanwhile is fetched once it is back.
    source.addEventListener("open", soon);
  }

  function span(ms) {
    var minutes = Math.max(0, Math.floor(ms / 60000));
    return minutes >= 60 ? Math.floor(minutes / 60) + " h " + (minutes % 60) + " min" : minutes + " min";
  }

  var countdown = null;
  function startCountdown() {
    if (countdown) clearInterval(countdown);
    var el = document.querySelector("[data-closes-at]");
    if (!el) return;
    var closes = Date.parse(el.getAttribute("data-closes-at"));
    function tick() {
      var left = closes - Date.now();
      if (left > 0) {
        el.textContent = "Window open: closes in " + span(left);
      } else {
        el.textContent = "Window closed";
        el.className = "window window-closed";
        clearInterval(countdown);
        soon();
      }
    }
    tick();
    countdown = setInterval(tick, 15000);
  }

  // One template form at a time, with its preview filled as the variables are typed.
  function wireComposer() {
    var select = document.querySelector("[data-template-select]");
    var forms = document.querySelectorAll(".template-form");
    function show() {
      forms.forEach(function (f) { f.hidden = select && f.getAttribute("data-template-index") !== select.value; });
    }
    if (select) { select.addEventListener("change", show); show(); }
    forms.forEach(function (form) {
      var preview = form.querySelector("[data-preview]");
      if (!preview) return;
      var body = preview.getAttribute("data-body");
      function render() {
        var text = body;
        form.querySelectorAll("[data-var]").forEach(function (input) {
          var name = input.getAttribute("data-var");
          text = text.split("{{" + name + "}}").join(input.value || "{{" + name + "}}");
        });
        preview.textContent = text;
      }
      form.addEventListener("input", render);
    });
    wireAttachment();
  }

  function size(bytes) {
    if (bytes >= 1000000) return (Math.floor(bytes / 100000) / 10) + " MB";
    if (bytes >= 1000) return Math.floor(bytes / 1000) + " KB";
    return bytes + " bytes";
  }

  // A chosen file is named with its size; one over the limit is refused before it is sent
  // (the server refuses it too). With a file, the text is an optional caption.
  function wireAttachment() {
    var input = document.getElementById("reply-file");
    var hint = document.getElementById("reply-file-hint");
    var form = document.getElementById("reply-form");
    if (!input || !hint || !form) return;
    var text = form.querySelector("textarea");
    var send = form.querySelector("button[type=submit]");
    var limit = parseInt(input.getAttribute("data-limit"), 10);
    var placeholder = text.placeholder;
    input.addEventListener("change", function () {
      var file = input.files && input.files[0];
      hint.classList.remove("bad");
      send.disabled = false;
      text.placeholder = placeholder;
      if (!file) {
        hint.textContent = hint.getAttribute("data-hint");
        return;
      }
      if (file.size > limit) {
        hint.textContent = file.name + " is " + size(file.size) + ": attachments may be up to " + size(limit) + ".";
        hint.classList.add("bad");
        send.disabled = true;
        return;
      }
      hint.textContent = file.name + " (" + size(file.size) + ")";
      text.placeholder = "Add a caption (optional)…";
    });
  }

  function scrollThread() {
    var list = document.getElementById("thread-messages");
    if (list) list.scrollTop = list.scrollHeight;
  }

  function markRead() {
    var thread = document.getElementById("thread");
    var current = document.querySelector(".conv.current.unread");
    if (thread && current && window.switchboard) {
      window.switchboard.api("POST", "/api/v1/conversations/" + thread.getAttribute("data-conversation") + "/read");
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!document.querySelector("[data-inbox]")) return;
    wireComposer();
    startCountdown();
    scrollThread();
    markRead();
    listen();
  });
})();
