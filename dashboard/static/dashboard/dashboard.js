/* Staff dashboard live updates (issue 6). Vanilla JS, no dependencies.
 *
 * One WebSocket to /ws/dashboard/. After every (re)connect the page sends
 * {"type": "replay", "after": lastId} and the server replays every market event it missed from
 * the outbox table, then streams live ones. Every message carries the event id: the page keeps
 * the highest id it has applied and drops duplicates (an event can arrive both replayed and
 * live). Reconnects back off exponentially (0.5 s doubling to 30 s, with jitter).
 *
 * Trades are applied in place (probabilities, volume, traders, feed, trade table); anything that
 * changes a market's status or shape re-fetches that market's server-rendered fragment.
 */
(function () {
  "use strict";

  var body = document.body;
  var page = body.dataset.page || "index";
  var pageMarketId = body.dataset.marketId ? Number(body.dataset.marketId) : null;
  var FEED_MAX = 50;
  var TRADES_MAX = 50;
  var SEEN_MAX = 2000;

  var state = {
    lastId: Number(body.dataset.lastEventId || 0),
    seen: new Set(),
    seenOrder: [],
    socket: null,
    attempt: 0,
    timer: null,
    applied: 0,
  };
  window.dashboardState = state; // read by the browser test and handy in devtools

  // --- Connection indicator ---------------------------------------------------------------
  var indicator = document.getElementById("connection");
  // "Live", or "Live (this process only)" on the in-memory channel layer (set by the server).
  var liveLabel = (indicator && indicator.dataset.liveLabel) || "Live";
  function setConnection(kind, text) {
    if (!indicator) return;
    if (indicator.dataset.state === kind && indicator.dataset.text === text) return;
    indicator.dataset.state = kind;
    indicator.dataset.text = text;
    indicator.querySelector(".connection-text").textContent = text;
  }

  // --- Formatting (same rules as dashboard/views.py) ----------------------------------------
  function percent(p) { return (p * 100).toFixed(1) + "%"; }
  function number(n) { return Number(n).toLocaleString("en-US"); }
  function shares(micro) {
    if (!micro) return "–";
    return (micro / 1e6).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
  function pad(n) { return String(n).padStart(2, "0"); }
  function clock(iso) {
    var d = iso ? new Date(iso) : new Date();
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  function stamp(iso) {
    var d = iso ? new Date(iso) : new Date();
    return MONTHS[d.getUTCMonth()] + " " + d.getUTCDate() + ", " + clock(iso);
  }
  function countdown(ms) {
    if (ms <= 0) return "closing";
    var s = Math.floor(ms / 1000);
    var d = Math.floor(s / 86400); s -= d * 86400;
    var h = Math.floor(s / 3600); s -= h * 3600;
    var m = Math.floor(s / 60); s -= m * 60;
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + s + "s";
    return s + "s";
  }

  // --- DOM helpers --------------------------------------------------------------------------
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function fromHTML(html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }
  function marketUrl(id) { return "/dashboard/markets/" + id + "/"; }
  function fetchText(url) {
    return fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (r) {
        if (!r.ok || r.redirected) throw new Error("fragment " + url + ": " + r.status);
        return r.text();
      });
  }

  // --- Applying events ----------------------------------------------------------------------
  function applyProbabilities(container, probabilities) {
    if (!container || !probabilities) return;
    probabilities.forEach(function (p, i) {
      var row = container.querySelector('[data-outcome="' + i + '"]');
      if (!row) return;
      var pct = row.querySelector("[data-pct]");
      var text = percent(p);
      if (pct && pct.textContent !== text) {
        pct.textContent = text;
        row.classList.remove("changed");
        void row.offsetWidth; // restart the highlight
        row.classList.add("changed");
        setTimeout(function () { row.classList.remove("changed"); }, 1500);
      }
      var fill = row.querySelector(".bar-fill");
      if (fill) fill.style.width = (p * 100).toFixed(2) + "%";
    });
  }

  function applyStats(container, payload) {
    if (!container) return;
    var v = container.querySelector("[data-volume]");
    if (v && payload.volume !== undefined) v.textContent = number(payload.volume);
    var tr = container.querySelector("[data-traders]");
    if (tr && payload.traders !== undefined) tr.textContent = number(payload.traders);
    var tc = container.querySelector("[data-trades]");
    if (tc) tc.textContent = number(Number(tc.textContent.replace(/,/g, "")) + 1);
  }

  function addFeedItem(msg) {
    if (typeof msg.market_id !== "number") return;
    var list = document.getElementById("feed");
    if (!list) return;
    var only = list.dataset.marketId;
    if (only && Number(only) !== msg.market_id) return;
    var empty = list.querySelector(".feed-empty");
    if (empty) empty.remove();
    // An event type this page does not know yet still gets a feed line (its summary), never a
    // broken class name.
    var kind = /^[a-z_]{1,40}$/.test(String(msg.event)) ? msg.event : "other";
    var li = el("li", { class: "feed-item is-new feed-" + kind, "data-event-id": String(msg.id) });
    li.appendChild(el("time", { datetime: msg.created_at || "" }, clock(msg.created_at)));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(el("a", { href: marketUrl(msg.market_id) }, msg.summary || msg.event));
    list.insertBefore(li, list.firstChild);
    while (list.children.length > FEED_MAX) list.removeChild(list.lastChild);
  }

  function addTradeRow(msg) {
    var tbody = document.getElementById("trades-body");
    if (!tbody) return;
    var p = msg.payload;
    if (tbody.querySelector('[data-trade-id="' + p.trade_id + '"]')) return;
    var tr = el("tr", { class: "new", "data-trade-id": String(p.trade_id) });
    var time = el("td", { "data-label": "Time" });
    time.appendChild(el("time", { datetime: msg.created_at || "" }, stamp(msg.created_at)));
    tr.appendChild(time);
    var probs = p.probabilities || [];
    [
      ["Member", msg.member_name || String(p.user_id), ""],
      ["Kind", p.kind, ""],
      ["Outcome", p.label, ""],
      ["Points", number(p.amount), "num"],
      ["Shares", shares(p.shares), "num"],
      ["Price after", probs[p.outcome] !== undefined ? percent(probs[p.outcome]) : "–", "num"],
    ].forEach(function (cell) {
      var attrs = { "data-label": cell[0] };
      if (cell[2]) attrs["class"] = cell[2];
      tr.appendChild(el("td", attrs, cell[1]));
    });
    tbody.insertBefore(tr, tbody.firstChild);
    while (tbody.children.length > TRADES_MAX) tbody.removeChild(tbody.lastChild);
    var empty = document.getElementById("trades-empty");
    if (empty) empty.hidden = true;
  }

  var chartTimer = null;
  var chartLast = 0;
  function refreshChart() {
    var url = body.dataset.chartUrl;
    var box = document.getElementById("chart");
    if (!url || !box || chartTimer) return;
    // At most one chart fetch every 2 s, trailing, so a burst of trades costs one request.
    var wait = Math.max(250, 2000 - (Date.now() - chartLast));
    chartTimer = setTimeout(function () {
      chartTimer = null;
      chartLast = Date.now();
      fetchText(url).then(function (svg) { box.innerHTML = svg; }).catch(function () {});
    }, wait);
  }

  function refreshPanel() {
    var url = body.dataset.panelUrl;
    var panel = document.getElementById("market-panel");
    if (!url || !panel) return;
    fetchText(url).then(function (html) {
      var fresh = fromHTML(html);
      if (fresh) panel.replaceWith(fresh);
    }).catch(function () {});
  }

  function updateCounts() {
    document.querySelectorAll(".status-section").forEach(function (section) {
      var n = section.querySelectorAll(".market-card").length;
      var count = document.querySelector('[data-count-for="' + section.dataset.status + '"]');
      if (count && !/\+$/.test(count.textContent)) count.textContent = String(n);
      var empty = section.querySelector(".empty");
      if (empty) empty.hidden = n > 0;
    });
  }

  function refreshCard(marketId) {
    fetchText(marketUrl(marketId) + "card/").then(function (html) {
      var card = fromHTML(html);
      if (!card) return;
      var old = document.getElementById("market-" + marketId);
      var target = document.querySelector('[data-cards-for="' + card.dataset.status + '"]');
      if (old && old.dataset.status === card.dataset.status) {
        old.replaceWith(card);
      } else {
        if (old) old.remove();
        if (!target) return;
        // Newest first, as the server renders them.
        var next = Array.prototype.find.call(target.children, function (c) {
          return Number(c.dataset.marketId) < marketId;
        });
        target.insertBefore(card, next || null);
      }
      card.classList.add("flash");
      updateCounts();
    }).catch(function () {});
  }

  function apply(msg) {
    if (typeof msg.id !== "number") return;
    if (state.seen.has(msg.id)) return;
    state.seen.add(msg.id);
    state.seenOrder.push(msg.id);
    if (state.seenOrder.length > SEEN_MAX) state.seen.delete(state.seenOrder.shift());
    if (msg.id > state.lastId) state.lastId = msg.id;
    state.applied += 1;

    addFeedItem(msg);
    if (typeof msg.market_id !== "number") return;
    // Trades apply in place; every other event (a close, a proposal, a dispute, an undone
    // proposal, a settlement, or a type added later) re-renders the market's fragment.
    var onThisMarket = page === "market" && msg.market_id === pageMarketId;
    if (msg.event === "trade") {
      var p = msg.payload || {};
      var card = document.getElementById("market-" + msg.market_id);
      if (card) { applyProbabilities(card, p.probabilities); applyStats(card, p); }
      if (onThisMarket) {
        var panel = document.getElementById("market-panel");
        applyProbabilities(panel, p.probabilities);
        applyStats(panel, p);
        addTradeRow(msg);
        refreshChart();
      }
    } else if (page === "index" && msg.event !== "vote_cast") {
      refreshCard(msg.market_id);
    } else if (onThisMarket) {
      refreshPanel();
      refreshChart();
    }
  }

  // --- The socket -------------------------------------------------------------------------
  function socketUrl() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + location.host + (body.dataset.wsPath || "/ws/dashboard/");
  }

  function scheduleReconnect() {
    if (state.timer) return;
    var base = Math.min(30000, 500 * Math.pow(2, state.attempt));
    var delay = Math.round(base / 2 + Math.random() * base / 2);
    state.attempt += 1;
    var seconds = Math.max(1, Math.round(delay / 1000));
    if (state.paused) {
      setConnection("paused", "Live updates paused — retrying in " + seconds + " s…");
    } else {
      setConnection("reconnecting", "Reconnecting in " + seconds + " s…");
    }
    state.timer = setTimeout(function () { state.timer = null; connect(); }, delay);
  }

  function connect() {
    var ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch (e) {
      scheduleReconnect();
      return;
    }
    state.socket = ws;
    if (state.attempt > 0 && !state.paused) setConnection("reconnecting", "Reconnecting…");
    ws.onopen = function () {
      ws.send(JSON.stringify({ type: "replay", after: state.lastId }));
    };
    ws.onmessage = function (e) {
      var msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      if (msg.type === "market.event") apply(msg);
      else if (msg.type === "paused") {
        state.paused = true;
        setConnection("paused", "Live updates paused");
      }
      else if (msg.type === "replayed") {
        state.attempt = 0;
        state.paused = false;
        setConnection("connected", liveLabel);
      } else if (msg.type === "stale") {
        // Too much was missed to replay: a fresh render is the quickest catch-up.
        location.reload();
      }
    };
    ws.onclose = function (e) {
      if (state.socket === ws) state.socket = null;
      // 4503: the server's live feed (Redis) is down; 1011: it failed under an open socket.
      if (e && (e.code === 4503 || e.code === 1011)) state.paused = true;
      scheduleReconnect();
    };
    ws.onerror = function () { /* onclose follows */ };
  }

  // --- Countdowns ---------------------------------------------------------------------------
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-closes-at]").forEach(function (t) {
      var left = Date.parse(t.dataset.closesAt) - now;
      // A proposal's payout countdown says what happens once it ends (data-ended).
      var text = left <= 0 && t.dataset.ended ? t.dataset.ended : (t.dataset.prefix || "") + countdown(left);
      if (t.textContent !== text) t.textContent = text;
    });
  }

  // --- Chart legend: highlight one outcome's line (the chart fragment keeps data-outcome) ---
  document.querySelectorAll(".legend-item").forEach(function (button) {
    button.addEventListener("click", function () {
      var box = document.getElementById("chart");
      if (!box) return;
      var on = button.getAttribute("aria-pressed") !== "true";
      document.querySelectorAll(".legend-item").forEach(function (b) { b.setAttribute("aria-pressed", "false"); });
      if (on) {
        button.setAttribute("aria-pressed", "true");
        box.dataset.highlight = button.dataset.highlight;
      } else {
        delete box.dataset.highlight;
      }
    });
  });

  window.addEventListener("online", function () {
    if (!state.socket && state.timer) {
      clearTimeout(state.timer);
      state.timer = null;
      connect();
    }
  });
  setInterval(tick, 1000);
  tick();
  connect();
})();
