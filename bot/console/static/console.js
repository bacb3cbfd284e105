// Agent console: queue, conversation, member profile. Live over one websocket.
// Every text from the server is rendered with textContent only.
(function () {
  "use strict";
  var T = {
    zh: {
      title: "客服工作台", username: "用户名", password: "密码", login: "登录", logout: "退出",
      other_lang: "English", bad_credentials: "用户名或密码不对", locked: "尝试次数太多，请 {n} 分钟后再试",
      tab_queue: "排队", tab_chat: "对话", tab_profile: "会员", queue: "等待中", mine: "进行中",
      take: "接入对话", send: "发送", transfer: "转给", end: "结束并交回机器人", give_coupon: "发放优惠券",
      grant: "发放", adjust_points: "调整积分（正数加、负数减）", adjust: "调整", notes: "内部备注", add_note: "添加",
      online: "已连接", offline: "连接中…", waited: "已等 {n} 分钟", out_of_hours: "非工作时间留言", prio: "优先",
      reason_request: "主动转人工", reason_complaint: "投诉", reason_fallback: "机器人没听懂", reason_priority: "专属客服",
      reason_signup_help: "入会求助", not_member: "非会员", nothing_open: "从左侧选一个对话",
      taken_by: "由 {n} 接待中", ended_by_shopper: "顾客已返回机器人", ended_restart: "顾客重新开始了对话",
      ended: "对话已结束", confirm_end: "结束对话并交回机器人？", coupon_sent: "已发放：{n}",
      coupon_msg: "已为你发放优惠券「{n}」，券码 {c}，{d} 前有效。", points_done: "积分已调整，余额 {n}",
      reason_needed: "请填写原因", sys_paused: "— 转人工 —", sys_resumed: "— 回到机器人 —", sys_session: "— 新会话 —",
      shopper: "顾客", bot: "机器人", agent: "客服", tier: "等级", points: "积分", expiring: "即将过期",
      coupons: "可用优惠券", orders: "最近订单", segment: "用户画像", recos: "推荐", best_sellers: "畅销",
      none: "无", phone: "手机", to_next: "距{n}还差 {m}", wants_bot: "顾客想回到机器人",
      window_closed: "已超过 48 小时未收到顾客消息，微信不允许再发送", quota_used: "本窗口的客服消息额度已用完",
      not_configured: "未配置微信发送（AppID/AppSecret）", wechat_refused: "微信拒绝了这条消息",
      quota_left: "微信额度剩余 {n} 条", window_until: "窗口至 {n}", already_taken: "已被 {n} 接入",
      not_waiting: "该对话已不在排队", supervisor_only: "超过 {n} 积分需要主管操作", not_grantable: "该券不能发给此会员",
      not_yours: "该对话由其他客服处理", error: "出错了：{n}", earlier: "以往转人工", rating: "评分",
      channel_webchat: "网页", channel_wechat: "微信",
      link_member: "换号绑定会员卡（原手机号、新手机号）", send_code: "发验证码", link_old: "原手机号", link_new: "新手机号（可空）",
      link_sent: "验证码已发到 {n}，顾客回复验证码即完成绑定", not_a_member: "没有这个手机号的会员",
      phone_taken: "新号码已属于其他会员", code_cooldown: "刚发过验证码，请稍后再试", code_daily_limit: "今天的验证码次数已用完",
      already_linked: "该对话已绑定这位会员", identity_taken: "该对话已绑定其他会员", sms_failed: "短信没发出去"
    },
    en: {
      title: "Agent console", username: "Username", password: "Password", login: "Log in", logout: "Log out",
      other_lang: "中文", bad_credentials: "Wrong username or password", locked: "Too many tries; try again in {n} min",
      tab_queue: "Queue", tab_chat: "Chat", tab_profile: "Member", queue: "Waiting", mine: "In progress",
      take: "Take conversation", send: "Send", transfer: "Transfer to", end: "End and hand back to the bot",
      give_coupon: "Give a coupon", grant: "Give", adjust_points: "Adjust points (+ add, - take)", adjust: "Adjust",
      notes: "Internal notes", add_note: "Add", online: "live", offline: "connecting…", waited: "waited {n} min",
      out_of_hours: "left a message after hours", prio: "priority", reason_request: "asked for a person",
      reason_complaint: "complaint", reason_fallback: "bot did not understand", reason_priority: "priority member",
      reason_signup_help: "signup help", not_member: "not a member", nothing_open: "Pick a conversation on the left",
      taken_by: "with {n}", ended_by_shopper: "The shopper went back to the bot", ended_restart: "The shopper restarted",
      ended: "Conversation ended", confirm_end: "End the conversation and hand it back to the bot?",
      coupon_sent: "Given: {n}", coupon_msg: "I've added the coupon \"{n}\" (code {c}) to your account, valid until {d}.",
      points_done: "Points adjusted, balance {n}", reason_needed: "Please give a reason", sys_paused: "— handed to a person —",
      sys_resumed: "— back to the bot —", sys_session: "— new session —", shopper: "Shopper", bot: "Bot", agent: "Agent",
      tier: "Tier", points: "Points", expiring: "expiring soon", coupons: "Usable coupons", orders: "Recent orders",
      segment: "Segment", recos: "Recommendations", best_sellers: "best sellers", none: "none", phone: "Phone",
      to_next: "{m} to {n}", wants_bot: "The shopper wants the bot back",
      window_closed: "No message from the shopper for 48 h: WeChat forbids sending", quota_used: "WeChat's message quota for this window is used up",
      not_configured: "WeChat sending is not configured (AppID/AppSecret)", wechat_refused: "WeChat refused the message",
      quota_left: "{n} WeChat messages left", window_until: "window until {n}", already_taken: "Already taken by {n}",
      not_waiting: "No longer waiting", supervisor_only: "Above {n} points needs a supervisor", not_grantable: "This coupon cannot be given to this member",
      not_yours: "With another agent", error: "Error: {n}", earlier: "Earlier handoffs", rating: "score",
      channel_webchat: "web", channel_wechat: "WeChat",
      link_member: "Link a member whose number changed (number on file, new number)", send_code: "Send code",
      link_old: "number on file", link_new: "new number (optional)",
      link_sent: "Code sent to {n}; the link is made when the shopper replies with it", not_a_member: "No member has this number",
      phone_taken: "The new number belongs to another member", code_cooldown: "A code was just sent; try again shortly",
      code_daily_limit: "No more codes today", already_linked: "This chat is already linked to this member",
      identity_taken: "This chat is linked to another member", sms_failed: "The text did not go out"
    }
  };
  var lang = localStorage.getItem("console.lang") || ((navigator.language || "zh").toLowerCase().indexOf("zh") === 0 ? "zh" : "en");
  var base = location.pathname.replace(/[^/]*$/, "");
  var me = null, ws = null, backoff = 500, openId = null, openData = null;
  var snapshot = { queue: [], active: [] }, unread = {}, shownTs = {};

  function t(key, vars) {
    var s = (T[lang] && T[lang][key]) || T.en[key] || key;
    Object.keys(vars || {}).forEach(function (k) { s = s.split("{" + k + "}").join(String(vars[k])); });
    return s;
  }
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function uid() { return Date.now().toString(36) + Math.random().toString(36).slice(2, 10); }
  function toast(text) {
    var box = $("toast"); box.textContent = text; box.hidden = false;
    clearTimeout(toast.timer); toast.timer = setTimeout(function () { box.hidden = true; }, 4000);
  }
  function fmtTime(ts) { var d = new Date(ts * 1000); return d.toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB", { hour: "2-digit", minute: "2-digit" }); }
  function minutesSince(iso) { return Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 60000)); }

  function applyTexts() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    Array.prototype.forEach.call(document.querySelectorAll("[data-t]"), function (n) { n.textContent = t(n.getAttribute("data-t")); });
    $("points-reason").placeholder = lang === "zh" ? "原因" : "reason";
    $("link-phone").placeholder = t("link_old"); $("link-new").placeholder = t("link_new");
    $("reply").placeholder = lang === "zh" ? "回复顾客…" : "Reply to the shopper…";
    $("conn").textContent = ws && ws.readyState === 1 ? t("online") : t("offline");
    renderLists();
    if (openData) renderOpen();
  }

  function api(method, path, body) {
    var opts = { method: method, credentials: "same-origin", headers: { "X-Console": "1" } };
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(base + path, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.status === 401 && path !== "api/login") { showLogin(); }
        if (!r.ok) { var e = new Error(data.error || String(r.status)); e.data = data; e.status = r.status; throw e; }
        return data;
      });
    });
  }
  function explain(err) {
    var d = err.data || {};
    var code = d.error || err.message;
    if (code === "already_taken") return t("already_taken", { n: d.agent || "?" });
    if (code === "supervisor_only") return t("supervisor_only", { n: d.limit });
    if (T[lang][code]) return t(code);
    return t("error", { n: d.message || code });
  }

  // ------------------------------------------------------------ login

  function showLogin() {
    me = null; if (ws) { try { ws.close(); } catch (e) { /* closed already */ } }
    $("app").hidden = true; $("login").hidden = false; $("username").focus();
  }
  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("login-error").textContent = "";
    $("login-button").disabled = true;
    api("POST", "api/login", { username: $("username").value, password: $("password").value }).then(function (data) {
      $("password").value = ""; start(data.agent);
    }).catch(function (err) {
      var d = err.data || {};
      $("login-error").textContent = d.error === "locked" ? t("locked", { n: Math.ceil((d.retry_after || 60) / 60) }) : t("bad_credentials");
    }).then(function () { $("login-button").disabled = false; });
  });
  Array.prototype.forEach.call(document.querySelectorAll(".lang-toggle"), function (b) {
    b.addEventListener("click", function () { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("console.lang", lang); applyTexts(); });
  });
  $("logout").addEventListener("click", function () { api("POST", "api/logout", {}).catch(function () {}).then(showLogin); });

  function start(agent) {
    me = agent;
    $("login").hidden = true; $("app").hidden = false;
    $("me").textContent = agent.name + (agent.role === "supervisor" ? " ★" : "");
    showTab("lists");
    connect();
    applyTexts();
  }

  // ------------------------------------------------------------ live

  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + base + "ws";
    ws = new WebSocket(url);
    ws.onopen = function () { backoff = 500; $("conn").textContent = t("online"); };
    ws.onclose = function () {
      $("conn").textContent = t("offline");
      if (me) setTimeout(connect, backoff); backoff = Math.min(backoff * 2, 10000);
    };
    ws.onmessage = function (ev) {
      var m; try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (m.type === "queue") { snapshot = m; renderLists(); refreshOpenStatus(); }
      else if (m.type === "message") onMessage(m);
      else if (m.type === "ended" || m.type === "transferred") { if (m.handoff === openId) openHandoff(openId, m); }
      else if (m.type === "error" && m.code === "unauthorized") showLogin();
    };
  }
  setInterval(function () { if (ws && ws.readyState === 1) ws.send("ping"); renderLists(); }, 25000);

  function onMessage(m) {
    if (m.handoff === openId) {
      appendItem({ kind: m.from, text: m.text, ts: m.ts, agent: m.agent });
      if (m.wants_bot) showBanner(t("wants_bot"));
    } else if (m.from === "shopper") {
      unread[m.handoff] = (unread[m.handoff] || 0) + 1; renderLists();
    }
  }

  // ------------------------------------------------------------ lists

  function entryNode(h) {
    var li = el("li"); li.setAttribute("data-id", h.id); li.setAttribute("data-testid", "entry-" + h.id);
    if (h.id === openId) li.className = "selected";
    var l1 = el("div", "line1");
    var who = h.member ? (h.member.name || h.member.phone) : t("not_member");
    l1.appendChild(el("strong", null, who));
    if (h.member) l1.appendChild(el("span", "tag" + (h.priority > 0 ? " prio" : ""), lang === "zh" ? h.member.tier_zh : h.member.tier_en));
    if (h.priority > 0) l1.appendChild(el("span", "tag prio", t("prio")));
    if (h.out_of_hours) l1.appendChild(el("span", "tag night", t("out_of_hours")));
    if (unread[h.id]) l1.appendChild(el("span", "unread", unread[h.id]));
    li.appendChild(l1);
    var meta = [t("channel_" + h.channel), t("reason_" + h.reason)];
    if (h.status === "queued") meta.push(t("waited", { n: minutesSince(h.created_at) }));
    else if (h.agent) meta.push(t("taken_by", { n: h.agent.name }));
    li.appendChild(el("div", "meta", meta.join(" · ")));
    li.addEventListener("click", function () { openHandoff(h.id); showTab("chat"); });
    return li;
  }
  function renderLists() {
    if (!me) return;
    var q = $("queue"), a = $("active");
    clear(q); clear(a);
    snapshot.queue.forEach(function (h) { q.appendChild(entryNode(h)); });
    snapshot.active.filter(function (h) { return me.role === "supervisor" || (h.agent && h.agent.id === me.id); })
      .forEach(function (h) { a.appendChild(entryNode(h)); });
    $("queue-count").textContent = snapshot.queue.length;
  }
  function refreshOpenStatus() {
    if (!openData) return;
    var all = snapshot.queue.concat(snapshot.active);
    var now = all.filter(function (h) { return h.id === openId; })[0];
    var was = openData.handoff;
    if ((now && (now.status !== was.status || (now.agent && now.agent.id) !== (was.agent && was.agent.id))) || (!now && (was.status === "queued" || was.status === "active"))) {
      openHandoff(openId);
    }
  }

  // ------------------------------------------------------------ one conversation

  function openHandoff(id, event) {
    return api("GET", "api/handoffs/" + id).then(function (data) {
      openId = id; openData = data; unread[id] = 0; shownTs = {};
      renderOpen();
      renderLists();
      if (event && event.type === "ended") showBanner(event.by === "shopper" ? t("ended_by_shopper") : event.by === "restart" ? t("ended_restart") : t("ended"));
    }).catch(function (err) { toast(explain(err)); });
  }
  function showBanner(text) { var b = $("banner"); b.textContent = text; b.hidden = false; }

  function appendItem(it) {
    if (it.ts && (it.kind === "agent" || it.kind === "shopper") && shownTs[it.kind + it.ts]) return;
    if (it.ts) shownTs[it.kind + it.ts] = true;
    var box = $("transcript");
    var cls = it.kind === "agent" ? "agent" : it.kind === "bot" ? "bot" : it.kind === "system" ? "system" : "shopper";
    var div = el("div", "msg " + cls);
    div.setAttribute("data-kind", cls);
    if (cls === "system") {
      div.textContent = t("sys_" + it.text) + (it.ts ? " " + fmtTime(it.ts) : "");
    } else {
      var label = cls === "agent" ? t("agent") + " " + (it.agent || "") : t(cls);
      div.appendChild(el("span", "who", label + (it.ts ? " · " + fmtTime(it.ts) : "")));
      div.appendChild(document.createTextNode(it.text || ""));
      if (it.buttons && it.buttons.length) div.appendChild(el("div", "buttons", "[" + it.buttons.join("] [") + "]"));
    }
    box.appendChild(div);
    box.scrollTop = box.scrollHeight;
  }

  function mine(h) { return h.status === "active" && h.agent && (h.agent.id === me.id || me.role === "supervisor"); }

  function renderOpen() {
    var d = openData, h = d.handoff;
    $("banner").hidden = true;
    var head = $("chat-head"); clear(head);
    head.appendChild(el("span", null, (h.member ? (h.member.name || h.member.phone) : t("not_member")) + " · " + t("channel_" + h.channel) + " · " + t("reason_" + h.reason)));
    if (h.status === "active" && h.agent) head.appendChild(el("span", "meta", " · " + t("taken_by", { n: h.agent.name })));
    var ch = d.channel || {};
    if (ch.channel === "wechat") {
      var note = ch.ok ? [] : [t(ch.code)];
      if (ch.quota_left !== null && ch.quota_left !== undefined) note.push(t("quota_left", { n: ch.quota_left }));
      if (ch.window_ends) note.push(t("window_until", { n: new Date(ch.window_ends * 1000).toLocaleString() }));
      head.appendChild(el("div", "small", note.join(" · ")));
    }
    clear($("transcript"));
    d.transcript.forEach(appendItem);
    if (h.status === "closed" || h.status === "cancelled") showBanner(h.closed_by === "shopper" ? t("ended_by_shopper") : h.closed_by === "restart" ? t("ended_restart") : t("ended"));
    $("take-bar").hidden = h.status !== "queued";
    var acting = mine(h);
    $("composer").hidden = !acting;
    $("chat-actions").hidden = !acting;
    $("acts").hidden = !acting;
    if (acting) loadAgents();
    renderProfile();
  }

  function kv(pairs) {
    var dl = el("dl", "kv");
    pairs.forEach(function (p) { dl.appendChild(el("dt", null, p[0])); dl.appendChild(el("dd", null, p[1])); });
    return dl;
  }
  function renderProfile() {
    var body = $("profile-body"); clear(body);
    var p = openData.profile, h = openData.handoff;
    if (!p) { body.appendChild(el("p", "small", t("not_member"))); }
    else {
      var card = el("div", "card"); var c = p.card, tier = p.tier, pts = p.points;
      card.appendChild(el("strong", null, c.name || c.phone_masked));
      var rows = [[t("phone"), c.phone_masked], [t("tier"), (lang === "zh" ? tier.name_zh : tier.name_en) + (tier.priority_service ? " ★" : "")],
        [t("points"), pts.balance + (pts.expiring_soon ? " (" + t("expiring") + " " + pts.expiring_soon + ")" : "")]];
      if (tier.next_zh) rows.push(["", t("to_next", { n: lang === "zh" ? tier.next_zh : tier.next_en, m: tier.to_next })]);
      if (p.segment) rows.push([t("segment"), p.segment.segment + " · " + p.segment.lifecycle]);
      card.appendChild(kv(rows)); body.appendChild(card);
      section(body, t("coupons"), p.coupons.map(function (cp) { return (lang === "zh" ? cp.campaign.name_zh : cp.campaign.name_en) + " · " + cp.code + " · " + cp.last_day; }));
      section(body, t("orders"), p.orders.map(function (o) { return o.placed_at.slice(0, 10) + " · ¥" + o.amount + " · " + o.lines.map(function (l) { return (lang === "zh" ? l.name_zh : l.name_en) || l.sku; }).join("、"); }));
      section(body, t("recos") + (p.recommendations.source === "best_sellers" ? " (" + t("best_sellers") + ")" : ""),
        p.recommendations.items.map(function (r) {
          var why = lang === "zh" ? r.reason_zh : r.reason_en;
          return (lang === "zh" ? r.name_zh : r.name_en) + (r.price ? " · ¥" + r.price : "") + (why ? " · " + why : "");
        }));
      var pick = $("coupon-pick"); clear(pick);
      p.grantable.forEach(function (g) { var o = el("option", null, (lang === "zh" ? g.name_zh : g.name_en) + " (" + g.code + ")"); o.value = g.code; pick.appendChild(o); });
      $("grant").disabled = !p.grantable.length;
    }
    $("adjust").disabled = !p; $("grant").disabled = !p || !p.grantable.length;
    if (openData.earlier.length) section(body, t("earlier"), openData.earlier.map(function (e) { return e.created_at.slice(0, 16).replace("T", " ") + " · " + t("reason_" + e.reason) + (e.rating ? " · " + t("rating") + " " + e.rating : ""); }));
    var notes = $("notes"); clear(notes);
    openData.notes.forEach(function (n) { var li = el("li", n.kind, (n.agent ? n.agent + ": " : "") + n.text); notes.appendChild(li); });
  }
  function section(parent, title, lines) {
    parent.appendChild(el("h3", null, title));
    if (!lines.length) { parent.appendChild(el("p", "small", t("none"))); return; }
    lines.forEach(function (line) { parent.appendChild(el("p", "small", line)); });
  }

  function loadAgents() {
    api("GET", "api/agents").then(function (data) {
      var sel = $("transfer-to"); clear(sel);
      data.agents.filter(function (a) { return a.id !== (openData.handoff.agent && openData.handoff.agent.id); }).forEach(function (a) {
        var o = el("option", null, a.name + (a.online ? " ●" : "")); o.value = a.username; sel.appendChild(o);
      });
      $("transfer").disabled = !sel.options.length;
    }).catch(function () {});
  }

  // ------------------------------------------------------------ acts

  $("take").addEventListener("click", function () {
    $("take").disabled = true;
    api("POST", "api/handoffs/" + openId + "/take", {}).then(function (r) {
      if (r.delivery) toast(t(r.delivery));  // e.g. WeChat's window closed: the greeting could not go
      return openHandoff(openId);
    })
      .catch(function (err) { toast(explain(err)); openHandoff(openId); })
      .then(function () { $("take").disabled = false; });
  });
  $("composer").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = $("reply").value.trim(); if (!text) return;
    $("send").disabled = true;
    api("POST", "api/handoffs/" + openId + "/reply", { text: text }).then(function (r) {
      $("reply").value = "";
      appendItem({ kind: "agent", text: text, ts: r.ts, agent: me.name });
      if (r.quota_left !== null && r.quota_left !== undefined) toast(t("quota_left", { n: r.quota_left }));
    }).catch(function (err) { toast(explain(err)); }).then(function () { $("send").disabled = false; $("reply").focus(); });
  });
  $("reply").addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); $("composer").requestSubmit(); }
  });
  $("grant").addEventListener("click", function () {
    var code = $("coupon-pick").value; if (!code) return;
    $("grant").disabled = true;
    api("POST", "api/handoffs/" + openId + "/coupon", { campaign: code, key: uid() }).then(function (r) {
      var name = lang === "zh" ? r.name_zh : r.name_en;
      toast(t("coupon_sent", { n: name + " " + r.code }));
      var shopperLang = openData.handoff.language === "en" ? "en" : "zh", keep = lang;
      lang = shopperLang; $("reply").value = t("coupon_msg", { n: shopperLang === "zh" ? r.name_zh : r.name_en, c: r.code, d: r.last_day }); lang = keep;
      return openHandoff(openId);
    }).catch(function (err) { toast(explain(err)); }).then(function () { $("grant").disabled = false; });
  });
  $("adjust").addEventListener("click", function () {
    var delta = parseInt($("points-delta").value, 10), reason = $("points-reason").value.trim();
    if (!delta) return;
    if (!reason) { toast(t("reason_needed")); return; }
    $("adjust").disabled = true;
    api("POST", "api/handoffs/" + openId + "/points", { delta: delta, reason: reason, key: uid() }).then(function (r) {
      toast(t("points_done", { n: r.balance })); $("points-delta").value = ""; $("points-reason").value = "";
      return openHandoff(openId);
    }).catch(function (err) { toast(explain(err)); }).then(function () { $("adjust").disabled = false; });
  });
  $("link").addEventListener("click", function () {
    var onFile = $("link-phone").value.trim(), fresh = $("link-new").value.trim();
    if (!onFile) return;
    $("link").disabled = true;
    api("POST", "api/handoffs/" + openId + "/link", { phone: onFile, new_phone: fresh || null }).then(function (r) {
      toast(t("link_sent", { n: r.phone })); $("link-phone").value = ""; $("link-new").value = "";
      return openHandoff(openId);
    }).catch(function (err) { toast(explain(err)); }).then(function () { $("link").disabled = false; });
  });
  $("add-note").addEventListener("click", function () {
    var text = $("note-text").value.trim(); if (!text) return;
    api("POST", "api/handoffs/" + openId + "/note", { text: text }).then(function (n) {
      $("note-text").value = ""; openData.notes.push(n); renderProfile();
    }).catch(function (err) { toast(explain(err)); });
  });
  $("transfer").addEventListener("click", function () {
    var to = $("transfer-to").value; if (!to) return;
    api("POST", "api/handoffs/" + openId + "/transfer", { to: to }).then(function () { return openHandoff(openId); })
      .catch(function (err) { toast(explain(err)); });
  });
  $("end").addEventListener("click", function () {
    if (!window.confirm(t("confirm_end"))) return;
    $("end").disabled = true;
    api("POST", "api/handoffs/" + openId + "/close", {}).then(function () { return openHandoff(openId); })
      .catch(function (err) { toast(explain(err)); }).then(function () { $("end").disabled = false; });
  });

  // ------------------------------------------------------------ small screens

  function showTab(name) {
    Array.prototype.forEach.call(document.querySelectorAll(".pane"), function (p) { p.classList.toggle("shown", p.id === name); });
  }
  Array.prototype.forEach.call(document.querySelectorAll(".tabs button"), function (b) {
    b.addEventListener("click", function () { showTab(b.getAttribute("data-tab")); });
  });

  applyTexts();
  api("GET", "api/me").then(start).catch(function () { showLogin(); });
})();
