// Small progressive enhancements; every page works without them.
(function () {
  "use strict";

  // The sender form lists every provider's fields; show only the chosen provider's.
  function syncProviderFields(select) {
    var kind = select.value;
    var form = select.form;
    if (!form) return;
    form.querySelectorAll("[data-kinds]").forEach(function (el) {
      var kinds = el.getAttribute("data-kinds").split(" ");
      var show = kinds.indexOf(kind) !== -1;
      el.hidden = !show;
      el.querySelectorAll("input").forEach(function (input) { input.disabled = !show || input.hasAttribute("data-readonly"); });
    });
  }

  // Destructive buttons ask first.
  function confirmSubmit(event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-provider-select]").forEach(function (select) {
      if (select.disabled) return;
      syncProviderFields(select);
      select.addEventListener("change", function () { syncProviderFields(select); });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", confirmSubmit);
    });
  });

  // For scripts that call the JSON API with the session cookie: the CSRF token to send as
  // X-CSRF-Token on anything but GET.
  window.switchboard = {
    csrf: function () { return document.body.getAttribute("data-csrf") || ""; },
    api: function (method, path, body) {
      var headers = { "Accept": "application/json" };
      if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = window.switchboard.csrf();
      if (body !== undefined) headers["Content-Type"] = "application/json";
      return fetch(path, {
        method: method,
        headers: headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body)
      });
    }
  };
})();
