// Campaign pages: the hopper's counters, bar, state and hold follow the live event stream.
(function () {
  "use strict";
  if (!document.querySelector("[data-campaign]")) return;
  var parts = ["closed", "pending", "retry", "failed", "skipped", "fresh"];

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  function update(event) {
    var id = event.campaign_id;
    var h = event.hopper;
    each('[data-campaign="' + id + '"]', function (box) {
      var total = box.querySelector('[data-count="total"]');
      if (total) total.textContent = h.total;
      parts.forEach(function (key) {
        var count = box.querySelector('[data-count="' + key + '"]');
        if (count) count.textContent = h[key];
        var seg = box.querySelector('[data-part="' + key + '"]');
        if (seg) seg.style.width = (h.total > 0 ? (h[key] * 100) / h.total : 0).toFixed(2) + "%";
      });
    });
    each('[data-state="' + id + '"]', function (pill) {
      pill.textContent = event.state;
      pill.className = "pill status-" + event.state;
    });
    each('[data-held="' + id + '"]', function (line) {
      if (event.held) {
        line.textContent = "Held: " + event.held.reason;
        line.hidden = false;
      } else {
        line.hidden = true;
      }
    });
  }

  // The page's policy allows no inline styles: the bars take their widths from here.
  each(".seg[data-width]", function (seg) {
    seg.style.width = seg.getAttribute("data-width") + "%";
  });

  if (!window.EventSource) return;
  var source = new EventSource("/api/v1/events/stream");
  source.addEventListener("campaign.progress", function (message) {
    try {
      update(JSON.parse(message.data));
    } catch (e) {
      // A malformed event changes nothing on the page.
    }
  });
})();
