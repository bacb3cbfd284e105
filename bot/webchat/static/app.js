// Web chat client: persistent visitor, reconnects, resends unacknowledged
// messages with the same id, and renders every text with textContent only.
(function () {
  "use strict";
  var params = new URLSearchParams(location.search);
  var lang = (params.get("lang") || navigator.language || "zh").toLowerCase().indexOf("zh") === 0 ? "zh" : "en";
  var store = (params.get("store") || "").replace(/[^A-Za-z0-9_-]/g, "").slice(0, 32);
  var T = {
    zh: { title: "会员助手", send: "发送", placeholder: "输入消息…", online: "在线", offline: "连接中…", agent: "客服",
          tooLong: "消息太长了，请简短一点再发给我～" },
    en: { title: "Member assistant", send: "Send", placeholder: "Type a message…", online: "online", offline: "connecting…",
          agent: "Agent", tooLong: "That message is too long for me. Please send a shorter one." }
  }[lang];
  var log = document.getElementById("log");
  var input = document.getElementById("input");
  var MAX_CHARS = Number(input.getAttribute("maxlength")) || 1000;
  var statusEl = document.getElementById("status");
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.getElementById("title").textContent = T.title;
  document.getElementById("send").textContent = T.send;
  input.placeholder = T.placeholder;

  var KEY = "loyalty.webchat";
  var state = JSON.parse(localStorage.getItem(KEY) || "{}");
  var lastTs = 0;            // newest message shown; 0 on a fresh page replays the history
  var seen = {};             // bot message timestamps already shown
  var outbox = [];           // messages not yet acknowledged
  var ws = null, backoff = 500;

  function save() { localStorage.setItem(KEY, JSON.stringify(state)); }
  function uid() { return Date.now().toString(36) + Math.random().toString(36).slice(2, 10); }
  function scroll() { log.scrollTop = log.scrollHeight; }

  function bubble(cls, text, who) {
    var div = document.createElement("div");
    div.className = "msg " + cls;
    if (who) { var w = document.createElement("span"); w.className = "who"; w.textContent = who; div.appendChild(w); }
    div.appendChild(document.createTextNode(text));
    log.appendChild(div); scroll();
    return div;
  }

  function showBot(m) {
    if (m.ts && seen[m.ts]) return;
    if (m.ts) { seen[m.ts] = true; if (m.ts > lastTs) lastTs = m.ts; }
    if (m.text) bubble("bot", m.text, m.agent ? T.agent + " " + m.agent : "");
    // Images the assistant renders itself (the member code's QR) come as PNG data URLs only.
    if (typeof m.image === "string" && m.image.indexOf("data:image/png;base64,") === 0) {
      var pic = document.createElement("img");
      pic.className = "msg-image";
      pic.alt = m.text || "";
      pic.src = m.image;
      log.appendChild(pic); scroll();
    }
    if (m.buttons && m.buttons.length) {
      var box = document.createElement("div");
      box.className = "buttons";
      m.buttons.forEach(function (b) {
        var btn = document.createElement("button");
        btn.type = "button";
        btn.textContent = b.title;
        btn.addEventListener("click", function () {
          Array.prototype.forEach.call(box.querySelectorAll("button"), function (x) { x.disabled = true; });
          send(b.title, b.payload);
        });
        box.appendChild(btn);
      });
      log.appendChild(box); scroll();
    }
  }

  function send(text, payload) {
    var msg = { type: "message", id: uid(), text: text };
    if (payload) msg.payload = payload;
    msg.el = payload && payload.charAt(0) === "/" && !text ? null : bubble("me pending", text);
    outbox.push(msg);
    flush();
  }

  function flush() {
    if (!ws || ws.readyState !== 1) return;
    outbox.forEach(function (m) {
      if (m.sent && Date.now() - m.sent < 10000) return;
      m.sent = Date.now();
      ws.send(JSON.stringify({ type: m.type, id: m.id, text: m.text, payload: m.payload }));
    });
  }

  function onFrame(ev) {
    var data; try { data = JSON.parse(ev.data); } catch (e) { return; }
    if (data.type === "bot") showBot(data);
    else if (data.type === "user" && !seen[data.ts]) {
      seen[data.ts] = true; if (data.ts > lastTs) lastTs = data.ts; bubble("me", data.text);
    }
    else if (data.type === "ack") {
      outbox = outbox.filter(function (m) {
        if (m.id !== data.id) return true;
        if (m.el) m.el.classList.remove("pending");
        return false;
      });
    } else if (data.type === "error" && data.code === "unauthorized") {
      delete state.visitor; delete state.token; save(); ws.close();
    } else if (data.type === "error" && data.id) {
      // Refused (e.g. too long): never resend it; give the text back to shorten.
      outbox = outbox.filter(function (m) {
        if (m.id !== data.id) return true;
        if (m.el) m.el.remove();
        if (m.text && !input.value) input.value = m.text;
        return false;
      });
      if (data.text) bubble("bot", data.text);
    }
  }

  function session() {
    return fetch("session", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ visitor: state.visitor, token: state.token }) })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.visitor !== state.visitor) { lastTs = 0; }
        state.visitor = s.visitor; state.token = s.token; save();
      });
  }

  function connect() {
    statusEl.textContent = T.offline;
    session().then(function () {
      var proto = location.protocol === "https:" ? "wss:" : "ws:";
      var url = proto + "//" + location.host + location.pathname.replace(/\/?$/, "/") + "ws?visitor=" +
        encodeURIComponent(state.visitor) + "&token=" + encodeURIComponent(state.token) + "&lang=" + lang +
        (store ? "&store=" + encodeURIComponent(store) : "");
      ws = new WebSocket(url);
      ws.onopen = function () {
        backoff = 500;
        statusEl.textContent = T.online;
        ws.send(JSON.stringify({ type: "hello", last_ts: lastTs }));
        outbox.forEach(function (m) { m.sent = 0; });
        flush();
        if (!state.started || (store && state.store !== store)) {
          state.started = true; state.store = store || state.store; save();
          // The page's language rides along so the very first answer is in it.
          var visit = store
            ? '/store_visit{"store_code":"' + store + '","first_follow":false,"language":"' + lang + '"}'
            : '/greet{"language":"' + lang + '"}';
          outbox.push({ type: "message", id: uid(), text: "", payload: visit, el: null });
          flush();
        }
      };
      ws.onmessage = onFrame;
      ws.onclose = function (ev) {
        if (ev.code === 1009) {  // "message too big": the server refused a frame unread
          outbox = outbox.filter(function (m) { return !m.text || m.text.length <= MAX_CHARS; });
          bubble("bot", T.tooLong);
        }
        retry();
      };
      ws.onerror = function () { try { ws.close(); } catch (e) { /* already closed */ } };
    }).catch(retry);
  }

  var retrying = false;
  function retry() {
    if (retrying) return;
    retrying = true;
    statusEl.textContent = T.offline;
    setTimeout(function () { retrying = false; connect(); }, backoff);
    backoff = Math.min(backoff * 2, 8000);
  }

  document.getElementById("composer").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    send(text);
  });
  window.addEventListener("online", function () { if (!ws || ws.readyState > 1) connect(); });
  connect();
})();
