"use strict";
// The staff app's page: login, dashboard (chart + table + CSV + definition per figure), campaigns, journeys,
// stores, review.
(function () {
  const T = {
    zh: { title: "会员运营后台", dashboard: "数据看板", campaigns: "优惠券活动", stores: "门店与二维码", review: "对话复核",
      logout: "退出", login: "登录", username: "用户名", password: "密码", start: "开始", end: "结束", store: "门店",
      channel: "渠道", all: "全部", apply: "查询", new_campaign: "新建活动", create: "创建", export: "导出训练样本",
      name_zh: "中文名", name_en: "英文名", kind: "类型", threshold: "门槛 (元)", discount: "减 (元)", percent_off: "折扣 %",
      gift_sku: "赠品 SKU", total_stock: "库存", per_member_limit: "每人限领", claim_start: "领取开始", claim_end: "领取结束",
      valid_days: "有效天数", points_cost: "所需积分", fresh: "数据实时计算于", rolled: "预汇总数据，截至", rolled_every: "每 {m} 分钟更新", csv: "下载 CSV", bad_credentials: "用户名或密码错误",
      locked: "尝试次数过多，请稍后再试", pause: "暂停", resume: "恢复", end_act: "结束", sheet: "A4 桌牌", pick: "确定",
      dismiss: "忽略", other_store: "您的账号只能查看本门店的数据",
      f_new_members: "新会员（按日、门店、渠道）", f_new_members_by_week: "新会员（按周）", f_active_members: "活跃会员", f_segments: "分群与生命周期",
      f_sales_by_tier: "按等级的销售", f_points: "积分", f_coupons: "优惠券漏斗", f_bot: "机器人与人工",
      f_not_understood: "未理解的消息", f_conversations: "对话（自助解决与转人工）", contained: "自助解决",
      handed_off: "转人工", journeys: "营销旅程", f_journeys: "旅程与群发：实验组对照组",
      new_broadcast: "新建群发", send_at: "发送时间（北京时间）", text_zh: "中文文案", text_en: "英文文案",
      audience: "受众（全部条件同时满足；留空＝不限）", segment: "RFM 分群", tier: "等级", lifecycle: "生命周期",
      tag: "标签", preview: "预览", not_allowed: "您的账号无权操作", p_audience: "受众人数", p_control: "对照组（不发送）",
      p_would_send: "将发送", p_already: "已规划过", p_skips: "跳过（原因）", p_held: "免打扰时段，顺延至",
      p_message: "消息预览", copy: "文案", copy_of: "编辑文案", save: "保存", reset: "恢复默认", copy_saved: "已保存",
      copy_fields: "可用占位符", copy_edited: "已修改", copy_locked: "已开始规划发送，文案不可再改", conv_t: "实验组转化率", conv_c: "对照组转化率", saved: "已创建" },
    en: { title: "Member marketing", dashboard: "Dashboard", campaigns: "Coupon campaigns", stores: "Stores & QR codes",
      review: "Conversation review", logout: "Log out", login: "Log in", username: "Username", password: "Password",
      start: "From", end: "To", store: "Store", channel: "Channel", all: "All", apply: "Apply",
      new_campaign: "New campaign", create: "Create", export: "Export training examples", name_zh: "Chinese name",
      name_en: "English name", kind: "Kind", threshold: "Threshold (yuan)", discount: "Discount (yuan)",
      percent_off: "Percent off", gift_sku: "Gift SKU", total_stock: "Stock", per_member_limit: "Per member",
      claim_start: "Claims from", claim_end: "Claims until", valid_days: "Valid days", points_cost: "Points cost",
      fresh: "Computed live at", rolled: "Pre-aggregated, as of", rolled_every: "refreshed every {m} min", csv: "Download CSV", bad_credentials: "Wrong username or password",
      locked: "Too many tries; try again later", pause: "Pause", resume: "Resume", end_act: "End", sheet: "A4 tents",
      pick: "Save", dismiss: "Dismiss", other_store: "Your account reads only your own store.",
      f_new_members: "New members (day, store, channel)", f_new_members_by_week: "New members (by week)", f_active_members: "Active members",
      f_segments: "Segments and lifecycle", f_sales_by_tier: "Sales by tier", f_points: "Points",
      f_coupons: "Coupon funnel", f_bot: "Bot and agents", f_not_understood: "Messages not understood",
      f_conversations: "Conversations (contained and handed off)", contained: "Contained", handed_off: "Handed off",
      journeys: "Journeys", f_journeys: "Journeys and broadcasts: treatment vs control", new_broadcast: "New broadcast",
      send_at: "Send at (Shanghai time)", text_zh: "Chinese copy", text_en: "English copy",
      audience: "Audience (every criterion must hold; empty = any)", segment: "RFM segment", tier: "Tier",
      lifecycle: "Lifecycle", tag: "Tag", preview: "Preview", not_allowed: "Your account may not do this.",
      p_audience: "Audience", p_control: "Control (not messaged)", p_would_send: "Would send", p_already: "Planned before",
      p_skips: "Skipped (rule)", p_held: "Quiet hours: held until", p_message: "Message preview", copy: "Copy", copy_of: "Edit copy", save: "Save", reset: "Back to default",
      copy_saved: "Saved", copy_fields: "Placeholders", copy_edited: "edited", copy_locked: "Planned: the copy can no longer change",
      conv_t: "Treatment conversion", conv_c: "Control conversion", saved: "Created" },
  };
  // The QR funnel's labels (kept apart from the table above so the figure stays in one place).
  Object.assign(T.zh, { f_qr_funnel: "门店二维码漏斗（到店访客 → 关注／打开网页 → 入会）", visitors: "访客",
    scans: "扫码", follows: "关注", page_opens: "网页打开", signups: "入会" });
  Object.assign(T.en, { f_qr_funnel: "Store QR funnel (visitors → follows / page opens → signups)",
    visitors: "Visitors", scans: "Scans", follows: "Follows", page_opens: "Page opens", signups: "Signups" });
  // How fresh the journeys' outcomes are: closed attribution windows are summed from rows frozen by the scheduler.
  Object.assign(T.zh, { outcomes_frozen: "已结束归因窗口的结果冻结于", outcomes_open: "，之后的窗口实时计算",
    outcomes_live: "结果尚未冻结：全部实时计算" });
  Object.assign(T.en, { outcomes_frozen: "Outcomes of closed attribution windows frozen at",
    outcomes_open: "; later windows computed live", outcomes_live: "Outcomes not frozen yet: all computed live" });
  let lang = localStorage.getItem("staff-lang") || "zh";
  let me = null;
  const charts = {};
  const $ = (sel) => document.querySelector(sel);
  const t = (k) => (T[lang] && T[lang][k]) || k;

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of kids) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
    return e;
  }

  function translate() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-t]").forEach((n) => { n.textContent = t(n.dataset.t); });
    $("#lang").textContent = lang === "zh" ? "English" : "中文";
  }

  async function api(path, opts) {
    const o = Object.assign({ headers: {} }, opts || {});
    if (o.method && o.method !== "GET") { o.headers["X-Staff"] = "1"; o.headers["Content-Type"] = "application/json"; }
    const r = await fetch(path, o);
    const body = (r.headers.get("content-type") || "").includes("json") ? await r.json() : await r.text();
    if (r.status === 401 && path !== "api/login") { showLogin(); }
    if (!r.ok) { const e = new Error((body && (t(body.error) !== body.error ? t(body.error) : body.message)) || r.status); e.body = body; throw e; }
    return body;
  }

  function showLogin() {
    me = null;
    $("#login").hidden = false; $("#tabs").hidden = true; $("#logout").hidden = true; $("#who").textContent = "";
    document.querySelectorAll(".view").forEach((v) => { v.hidden = true; });
  }

  function show(view) {
    document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== view; });
    document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("on", b.dataset.view === view));
    ({ dashboard: loadDashboard, campaigns: loadCampaigns, journeys: loadJourneys, stores: loadStores, review: loadReview })[view]();
  }

  async function start(who) {
    me = who;
    $("#login").hidden = true; $("#tabs").hidden = false; $("#logout").hidden = false;
    $("#who").textContent = `${me.name} · ${me.role}${me.store ? " · " + me.store : ""}`;
    $("#tabs button[data-view=campaigns]").hidden = !me.campaigns;
    $("#tabs button[data-view=journeys]").hidden = !me.campaigns;  // not split by store: none for a manager
    const sel = $("#filters select[name=store]");
    const { stores } = await api("api/stores");
    for (const s of [sel, $("#broadcast-form select[name=store]"), $("#journey-filters select[name=store]")]) {
      s.querySelectorAll("option:not([value=''])").forEach((o) => o.remove());
      stores.forEach((st) => s.append(el("option", { value: st.code }, `${st.code} ${lang === "zh" ? st.name_zh : st.name_en}`)));
    }
    if (!me.all_stores) { sel.value = me.store; sel.querySelector("option[value='']").remove(); }
    show("dashboard");
  }

  function query(form) {
    const f = new FormData(form || $("#filters"));
    const p = new URLSearchParams();
    for (const [k, v] of f.entries()) if (v) p.set(k, v);
    return p.toString();
  }

  function table(rows) {
    const tb = el("table", { class: "data" });
    if (!rows.length) return tb;
    const cols = Object.keys(rows[0]);
    tb.append(el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", {}, c)))));
    tb.append(el("tbody", {}, ...rows.map((r) => el("tr", {}, ...cols.map((c) =>
      el("td", { class: typeof r[c] === "number" ? "num" : "" }, r[c] == null ? "–" : r[c]))))));
    return tb;
  }

  // The QR funnel: per store, visitors, follows, page opens and signups side by side; rows as qr_funnel.csv.
  function funnelFigure(d) {
    const rows = d.qr_funnel || [];
    const steps = ["visitors", "follows", "page_opens", "signups"];
    return { rows, chart: ["bar", rows.map((r) => r.store), ...steps.map((k) => rows.map((r) => r[k]))],
      labels: steps.map(t), def: "qr_funnel" };
  }

  // Each figure: its rows (the same as the CSV), and what the chart draws from them.
  function figureRows(d) {
    const byDay = {};
    d.new_members.forEach((r) => { byDay[r.day] = (byDay[r.day] || 0) + r.members; });
    const byWeek = {};
    d.new_members_by_week.forEach((r) => { byWeek[r.week] = (byWeek[r.week] || 0) + r.members; });
    const b = d.bot;
    const convDays = {};
    d.conversations.forEach((r) => { const x = convDays[r.day] || [0, 0]; x[0] += r.contained; x[1] += r.handed_off; convDays[r.day] = x; });
    return {
      new_members: { rows: d.new_members, chart: ["bar", Object.keys(byDay), Object.values(byDay)], def: "new_members" },
      new_members_by_week: { rows: d.new_members_by_week, chart: ["bar", Object.keys(byWeek), Object.values(byWeek)],
        def: "new_members_by_week" },
      qr_funnel: funnelFigure(d),
      active_members: { rows: [{ figure: "active_members", value: d.active_members }], def: "active_members" },
      segments: { rows: d.segments, chart: ["bar", d.segments.map((r) => r.lifecycle + "/" + r.segment), d.segments.map((r) => r.members)], def: "segments" },
      sales_by_tier: { rows: d.sales_by_tier, chart: ["bar", d.sales_by_tier.map((r) => r.tier), d.sales_by_tier.map((r) => r.aov_fen / 100)], def: "sales_by_tier" },
      points: { rows: Object.entries(d.points).map(([k, v]) => ({ figure: k, value: v })), chart: ["bar", ["issued", "spent", "expired", "liability"], ["issued", "spent", "expired", "liability"].map((k) => d.points[k])], def: "points" },
      coupons: { rows: d.coupons, chart: ["bar", d.coupons.map((r) => r.campaign), d.coupons.map((r) => r.claimed), d.coupons.map((r) => r.redeemed)], def: "coupons" },
      conversations: { rows: d.conversations, chart: ["bar", Object.keys(convDays), Object.values(convDays).map((x) => x[0]),
        Object.values(convDays).map((x) => x[1])], labels: [t("contained"), t("handed_off")], stacked: true, def: "conversations" },
      // The same rows as bot.csv (bot/staff/app.py:bot_rows).
      bot: { rows: ["conversations", "contained", "containment", "bot_turns", "fallback_turns", "fallback_rate", "handoffs",
        "wait_p50_s", "wait_p90_s", "rated", "satisfaction", "bot_rated", "bot_satisfaction"].map((k) => ({ figure: k, value: b[k] })).concat(
        Object.entries(b.by_reason).map(([k, v]) => ({ figure: "handoffs_" + k, value: v })),
        Object.entries(b.handoff_rate).map(([k, v]) => ({ figure: "handoff_rate_" + k, value: v }))),
        chart: ["doughnut", Object.keys(b.by_reason), Object.values(b.by_reason)], def: "bot" },
      not_understood: { rows: b.not_understood, def: "bot" },
    };
  }

  function draw(name, spec, labelsOf, stacked) {
    if (charts[name]) { charts[name].destroy(); delete charts[name]; }
    if (!spec || !window.Chart) return null;
    const [type, labels, ...series] = spec;
    const canvas = el("canvas", { id: "chart-" + name, "data-values": JSON.stringify(series[0]) });
    const colors = ["#2d5283", "#e0822d", "#3a9d5d", "#b03a48", "#7a5195"];
    const datasets = series.map((data, i) => ({ data, label: labelsOf ? labelsOf[i] : (i ? "redeemed" : name),
      backgroundColor: type === "doughnut" ? colors : colors[i % colors.length] }));
    setTimeout(() => { charts[name] = new window.Chart(canvas, { type, data: { labels, datasets },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
        scales: stacked ? { x: { stacked: true }, y: { stacked: true } } : undefined,
        plugins: { legend: { display: series.length > 1 || type === "doughnut" } } } }); }, 0);
    return el("div", { style: "height:240px" }, canvas);
  }

  async function loadDashboard() {
    $("#dash-error").textContent = "";
    let d;
    try { d = await api("api/dashboard?" + query()); } catch (e) { $("#dash-error").textContent = e.message; return; }
    const rolled = d.rolled_up || { figures: [] };
    // Figures read from the pre-aggregated tables (loyalty/reports/rollup.py) say as of when, on the card.
    const rolledNote = rolled.as_of ? `${t("rolled")} ${new Date(rolled.as_of).toLocaleString()} · ` +
      t("rolled_every").replace("{m}", Math.round(rolled.every_seconds / 60)) : "";
    $("#freshness").textContent = `${t("fresh")} ${new Date(d.as_of).toLocaleString()}` +
      (rolledNote ? ` · ${rolledNote}` : "");
    const box = $("#figures");
    box.replaceChildren();
    for (const [name, f] of Object.entries(figureRows(d))) {
      const def = d.definitions[f.def][lang === "zh" ? 0 : 1];
      const card = el("div", { class: "card figure", id: "figure-" + name },
        el("h3", {}, t("f_" + name)), el("p", { class: "definition" }, def));
      if (rolledNote && rolled.figures.includes(name)) card.append(el("p", { class: "muted rolled" }, rolledNote));
      const chart = draw(name, f.chart, f.labels, f.stacked);
      if (chart) card.append(chart);
      card.append(el("div", { class: "scroll" }, table(f.rows)),
        el("a", { href: `api/dashboard/${name}.csv?${query()}`, class: "csv" }, t("csv")));
      box.append(card);
    }
    segmentMoves(d);
  }

  // Members: how members moved between lifecycle stages and RFM segments (loyalty/reports/segments.py).
  // A card per dimension after the segment sizes: a bar per segment (first assignment and moved in up, moved
  // out down), its table and CSV, then the from→to matrix with shaded cells and its CSV.
  const TM = {
    zh: { segment_moves_lifecycle: "生命周期阶段迁移", segment_moves_rfm: "RFM 分群迁移", first: "新进入",
      moved_in: "迁入", moved_out: "迁出", matrix: "迁移矩阵（行：原分群，列：新分群）",
      none: "（首次）", csv_matrix: "下载矩阵 CSV" },
    en: { segment_moves_lifecycle: "Lifecycle stage moves", segment_moves_rfm: "RFM segment moves", first: "First",
      moved_in: "Moved in", moved_out: "Moved out", matrix: "Moves matrix (rows: from, columns: to)", none: "(first)", csv_matrix: "Download matrix CSV" },
  };
  const tm = (k) => TM[lang][k] || k;

  function movesMatrix(part) {
    const codes = part.segments.map((r) => r.segment);
    const name = Object.fromEntries(part.segments.map((r) => [r.segment, lang === "zh" ? r.name_zh : r.name_en]));
    const cell = Object.fromEntries(part.matrix.map((c) => [(c.from || "") + ">" + c.to, c.members]));
    const top = Math.max(1, ...part.matrix.map((c) => c.members));
    const tb = el("table", { class: "data matrix" });
    tb.append(el("thead", {}, el("tr", {}, el("th", {}, "→"), ...codes.map((c) => el("th", {}, name[c])))));
    tb.append(el("tbody", {}, ...[""].concat(codes).map((from) => el("tr", {},
      el("th", {}, from ? name[from] : tm("none")), ...codes.map((to) => {
        const n = cell[from + ">" + to] || 0;
        return el("td", { class: `num shade-${n ? 1 + Math.min(3, Math.floor((4 * n) / (top + 1))) : 0}`,
          "data-from": from, "data-to": to }, n || "");  // blank: no move, so the moves stand out
      })))));
    return tb;
  }

  function segmentMoves(d) {
    if (!d.segment_moves) return;
    let after = $("#figure-segments");
    for (const dim of ["lifecycle", "rfm"]) {
      const name = "segment_moves_" + dim;
      const part = d.segment_moves[dim];
      const card = el("div", { class: "card figure", id: "figure-" + name },
        el("h3", {}, tm(name)), el("p", { class: "definition" }, d.segment_moves.definition[lang === "zh" ? 0 : 1]));
      const chart = draw(name, ["bar", part.segments.map((r) => (lang === "zh" ? r.name_zh : r.name_en)),
        part.segments.map((r) => r.first), part.segments.map((r) => r.moved_in), part.segments.map((r) => (r.moved_out ? -r.moved_out : 0))],
        [tm("first"), tm("moved_in"), tm("moved_out")], true);
      if (chart) card.append(chart);
      card.append(el("div", { class: "scroll" }, table(part.segments)),  // the same rows as the CSV
        el("a", { href: `api/dashboard/${name}.csv?${query()}`, class: "csv" }, t("csv")),
        el("h4", {}, tm("matrix")), el("div", { class: "scroll" }, movesMatrix(part)),
        el("a", { href: `api/dashboard/${name}_matrix.csv?${query()}`, class: "csv" }, tm("csv_matrix")));
      if (after) after.after(card); else $("#figures").append(card);
      after = card;
    }
  }

  async function loadCampaigns() {
    const { campaigns } = await api("api/campaigns");
    const tb = table(campaigns.map((c) => ({ code: c.code, name: lang === "zh" ? c.name_zh : c.name_en, kind: c.kind,
      state: c.state, stock: c.total_stock, issued: c.issued, claim_end: c.claim_end })));
    tb.querySelectorAll("tbody tr").forEach((tr, i) => {
      const c = campaigns[i];
      const acts = c.state === "ended" ? [] : [c.state === "paused" ? "resume" : "pause", "end"];
      tr.append(el("td", {}, ...acts.map((a) => el("button", { type: "button", "data-act": a,
        onclick: async () => { await api(`api/campaigns/${c.code}/${a}`, { method: "POST", body: "{}" }); loadCampaigns(); } },
        t(a === "end" ? "end_act" : a)))));
    });
    $("#campaign-table").replaceWith(Object.assign(tb, { id: "campaign-table" }));
  }

  const pct = (x) => (x == null ? "–" : (x * 100).toFixed(1) + "%");

  function showPreview(p, title) {
    const box = $("#journey-preview");
    const skips = Object.entries(p.skips).map(([k, v]) => `${k}: ${v}`).join(", ") || "–";
    const facts = [["p_audience", p.audience], ["p_control", p.control], ["p_would_send", p.would_send],
      ["p_already", p.already], ["p_skips", skips]];
    if (p.held_until) facts.push(["p_held", new Date(p.held_until).toLocaleString()]);
    box.replaceChildren(el("h3", {}, `${t("preview")} · ${title}`),
      el("dl", {}, ...facts.flatMap(([k, v]) => [el("dt", {}, t(k)), el("dd", { "data-k": k }, v)])),
      el("h4", {}, t("p_message")),
      el("p", { class: "message", lang: "zh", id: "preview-zh" }, p.message_zh || "–"),
      el("p", { class: "message", lang: "en", id: "preview-en" }, p.message_en || "–"));
    box.classList.add("preview");
    box.hidden = false;
  }

  async function loadJourneys() {
    // No dates and no store: since each journey began; else the members whose latest send falls in them.
    const q = query($("#journey-filters"));
    $("#journey-error").textContent = "";
    let d;
    try { d = await api("api/journeys?" + q); } catch (e) { $("#journey-error").textContent = e.message; return; }
    $("#journey-csv").setAttribute("href", q ? "api/journeys.csv?" + q : "api/journeys.csv");
    $("#journey-definition").textContent = d.definitions.journeys[lang === "zh" ? 0 : 1];
    $("#journey-freshness").textContent = `${t("fresh")} ${new Date(d.as_of).toLocaleString()}`;
    const rows = d.journeys;
    const holder = $("#journey-chart");
    holder.replaceChildren();
    const chart = draw("journeys", ["bar", rows.map((r) => r.journey), rows.map((r) => r.conversion_treatment),
      rows.map((r) => r.conversion_control)], [t("conv_t"), t("conv_c")]);
    if (chart) holder.append(chart);
    const tb = table(rows.map((r) => Object.assign({}, r, {
      conversion_treatment: pct(r.conversion_treatment), conversion_control: pct(r.conversion_control),
      uplift: pct(r.uplift), uplift_low: pct(r.uplift_low), uplift_high: pct(r.uplift_high) })));
    tb.querySelectorAll("tbody tr").forEach((tr, i) => {
      const r = rows[i];
      const name = encodeURIComponent(r.journey);
      const act = r.state === "paused" ? "resume" : "pause";
      tr.prepend(el("td", {},
        el("button", { type: "button", "data-act": act, onclick: async () => {
          await api(`api/journeys/${name}/${act}`, { method: "POST", body: "{}" }); loadJourneys(); } }, t(act)),
        el("button", { type: "button", "data-act": "preview", onclick: async () => {
          const { preview } = await api(`api/journeys/${name}/preview`); showPreview(preview, r.journey); } }, t("preview")),
        el("button", { type: "button", "data-act": "copy", onclick: () => editCopy(r.journey) }, t("copy"))));
    });
    const head = tb.querySelector("thead tr");
    if (head) head.prepend(el("th", {}, ""));
    $("#journey-table").replaceWith(Object.assign(tb, { id: "journey-table" }));
    $("#journey-outcomes").textContent = d.outcomes_frozen_until
      ? `${t("outcomes_frozen")} ${new Date(d.outcomes_frozen_until).toLocaleString()}${t("outcomes_open")}`
      : t("outcomes_live");
  }

  // A journey's (or a broadcast's) copy: one form per step, zh and en, preview before saving (loyalty/outreach/copy.py).
  async function editCopy(journey) {
    const name = encodeURIComponent(journey);
    const d = await api(`api/copy/${name}`);
    const box = $("#journey-copy");
    box.replaceChildren(el("h3", {}, `${t("copy_of")} · ${journey}`));
    for (const st of d.steps) {
      const zh = el("textarea", { name: "text_zh", rows: "2", maxlength: String(d.max_chars), lang: "zh" });
      const en = el("textarea", { name: "text_en", rows: "2", maxlength: String(d.max_chars), lang: "en" });
      zh.value = st.text_zh; en.value = st.text_en;
      const err = el("p", { class: "error", "data-step-error": st.step });
      const shown = el("div", { class: "preview", "data-step-preview": st.step });
      const body = (extra) => JSON.stringify(Object.assign({ step: st.step, text_zh: zh.value, text_en: en.value }, extra));
      const run = async (fn) => { err.textContent = ""; try { await fn(); } catch (e) { err.textContent = (e.body && e.body.message) || e.message; } };
      const form = el("form", { class: "copy-step", "data-step": st.step },
        el("h4", {}, `${st.step} · ${st.kind}` + (st.edited ? ` · ${t("copy_edited")}` : "")),
        el("label", {}, "中文 ", zh), el("label", {}, "English ", en),
        el("p", { class: "muted" }, `${t("copy_fields")}: ` + (st.fields.map((f) => `{${f}}`).join(" ") || "–")),
        st.editable ? el("div", {},
          el("button", { type: "button", "data-act": "copy-preview", onclick: () => run(async () => {
            const { preview } = await api(`api/copy/${name}/preview`, { method: "POST", body: body({}) });
            shown.replaceChildren(el("p", { class: "message", lang: "zh" }, preview.message_zh),
              el("p", { class: "message", lang: "en" }, preview.message_en)); }) }, t("preview")),
          el("button", { type: "button", "data-act": "copy-save", onclick: () => run(async () => {
            await api(`api/copy/${name}`, { method: "POST", body: body({}) }); editCopy(journey); }) }, t("save")),
          st.edited ? el("button", { type: "button", "data-act": "copy-reset", onclick: () => run(async () => {
            await api(`api/copy/${name}`, { method: "POST", body: body({ reset: true }) }); editCopy(journey); }) }, t("reset")) : "")
          : el("p", { class: "muted" }, t("copy_locked")),
        err, shown);
      box.append(form);
    }
    box.hidden = false;
  }

  function broadcastBody() {
    return Object.fromEntries(new FormData($("#broadcast-form")).entries());
  }

  async function loadStores() {
    const { stores } = await api("api/stores");
    const tb = table(stores);
    tb.querySelectorAll("tbody tr").forEach((tr, i) => tr.append(el("td", {},
      el("a", { href: `api/stores/${stores[i].code}/qr-sheet.png`, target: "_blank" }, t("sheet")))));
    $("#store-table").replaceWith(Object.assign(tb, { id: "store-table" }));
  }

  async function loadReview() {
    const { messages } = await api("api/review");
    const tb = table(messages.map((m) => ({ id: m.id, text: m.text, seen: m.seen, suggested: m.suggested, confidence: m.confidence })));
    tb.querySelectorAll("tbody tr").forEach((tr, i) => {
      const m = messages[i];
      const input = el("input", { value: m.suggested || "", size: "14", "aria-label": "intent" });
      tr.append(el("td", {}, input,
        el("button", { type: "button", onclick: async () => { await api(`api/review/${m.id}`, { method: "POST", body: JSON.stringify({ intent: input.value }) }); loadReview(); } }, t("pick")),
        el("button", { type: "button", onclick: async () => { await api(`api/review/${m.id}`, { method: "POST", body: JSON.stringify({ intent: "-" }) }); loadReview(); } }, t("dismiss"))));
    });
    $("#review-table").replaceWith(Object.assign(tb, { id: "review-table" }));
  }

  document.addEventListener("DOMContentLoaded", async () => {
    translate();
    $("#lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("staff-lang", lang); translate(); if (me) show(document.querySelector("#tabs .on").dataset.view); });
    document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => show(b.dataset.view)));
    $("#login").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(ev.target);
      try {
        const r = await api("api/login", { method: "POST", body: JSON.stringify({ username: f.get("username"), password: f.get("password") }) });
        $("#login-error").textContent = ""; start(r.me);
      } catch (e) { $("#login-error").textContent = e.message; }
    });
    $("#logout").addEventListener("click", async () => { await api("api/logout", { method: "POST", body: "{}" }); showLogin(); });
    $("#filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadDashboard(); });
    $("#journey-filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadJourneys(); });
    $("#campaign-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = Object.fromEntries(new FormData(ev.target).entries());
      try {
        await api("api/campaigns", { method: "POST", body: JSON.stringify(body) });
        $("#campaign-error").textContent = ""; ev.target.reset(); loadCampaigns();
      } catch (e) { $("#campaign-error").textContent = e.message; }
    });
    $("#broadcast-preview").addEventListener("click", async () => {
      try {
        const { preview } = await api("api/broadcasts/preview", { method: "POST", body: JSON.stringify(broadcastBody()) });
        $("#broadcast-error").textContent = ""; $("#broadcast-status").textContent = "";
        showPreview(preview, broadcastBody().code);
      } catch (e) { $("#broadcast-error").textContent = e.message; }
    });
    $("#broadcast-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const { broadcast } = await api("api/broadcasts", { method: "POST", body: JSON.stringify(broadcastBody()) });
        $("#broadcast-error").textContent = ""; $("#broadcast-status").textContent = `${t("saved")}: ${broadcast.journey}`;
        ev.target.reset(); loadJourneys();
      } catch (e) { $("#broadcast-error").textContent = e.message; }
    });
    try { start(await api("api/me")); } catch (e) { showLogin(); }
  });
})();
