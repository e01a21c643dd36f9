// streetsight installer console: no framework, no build step, nothing from a CDN (the pole is offline).
'use strict';

const T = {
  'zh-CN': {
    title: '安装调试台', tab_cameras: '摄像机与区域', tab_incidents: '最近事件', tab_check: '自检',
    logout: '退出', login_title: '登录安装调试台', password: '密码', login: '登录',
    wrong_password: '密码错误', throttled: '错误次数过多，请稍后再试', lang: 'English',
    mode_select: '选择/移动', mode_zone: '新建区域', mode_mask: '新建屏蔽区', mode_ground: '地面标定',
    finish: '完成', cancel: '取消', ground_metres: '该点地面坐标（米）', clear_ground: '清除标定',
    show_boxes: '显示检测框', no_frame: '等待画面…', zones: '区域', masks: '屏蔽区', ground: '地面标定',
    save: '保存并应用', revert: '放弃修改', saved: '已保存并重新加载', unchanged: '没有改动',
    invalid: '配置有误，未保存：', run_check: '运行自检', checking: '自检中（约 10–30 秒）…',
    delete: '删除', add_rule: '＋ 添加规则', reference_yes: '参考图：已有', reference_no: '参考图：尚无',
    take_reference: '立即拍摄参考图', reference_taken: '参考图已拍摄', name: '名称', area: '面积',
    fit: '标定误差', points: '个点', no_ground: '未标定：在画面上点击至少 4 个点并输入其地面坐标（米）。',
    hint_select: '拖动顶点移动；双击顶点删除；点击边中点加点。',
    hint_zone: '在画面上逐个点击多边形顶点，至少 3 个，然后点“完成”。',
    hint_mask: '点击屏蔽区顶点（其中的检测将被忽略），然后点“完成”。',
    hint_ground: '先输入 X、Y（米），再在画面上点击该地面点。',
    need3: '至少需要 3 个点', id_taken: '该区域编号已存在', bad_id: '区域编号只能用字母、数字、- 和 _',
    no_incidents: '暂无事件（本次启动以来）', fps: '帧/秒', pass: '通过', fail: '失败', fix: '处理',
    unsaved: '有未保存的修改', area_m2: '区域实际面积（平方米）；已做地面标定时可不填', fitted_area: '标定面积', remove_rule: '删除规则', item: '项目', result: '结果', detail: '详情',
    state_streaming: '在线', state_connecting: '连接中', state_down: '断开', state_stopped: '已停止',
    state_off: '未启动', state_unauthorized: '登录被拒',
    phase_opened: '发现', phase_updated: '更新', phase_resolved: '已结束', phase_verified: '核查',
  },
  en: {
    title: 'installer console', tab_cameras: 'Cameras & zones', tab_incidents: 'Recent incidents',
    tab_check: 'Check', logout: 'Log out', login_title: 'Log in to the console', password: 'Password',
    login: 'Log in', wrong_password: 'Wrong password', throttled: 'Too many wrong passwords; wait and retry',
    lang: '中文', mode_select: 'Select / move', mode_zone: 'New zone', mode_mask: 'New mask',
    mode_ground: 'Ground calibration', finish: 'Finish', cancel: 'Cancel',
    ground_metres: 'ground position of the point (m)', clear_ground: 'Clear calibration',
    show_boxes: 'Show detections', no_frame: 'Waiting for a picture…', zones: 'Zones', masks: 'Masks',
    ground: 'Ground calibration', save: 'Save and apply', revert: 'Discard changes',
    saved: 'Saved and reloaded', unchanged: 'Nothing changed', invalid: 'Not saved, the configuration has errors:',
    run_check: 'Run check', checking: 'Checking (10–30 s)…', delete: 'Delete', add_rule: '+ add rule',
    reference_yes: 'reference: taken', reference_no: 'reference: none yet', take_reference: 'Take reference now',
    reference_taken: 'Reference taken', name: 'Name', area: 'area', fit: 'fit error', points: 'points',
    no_ground: 'Not calibrated: click at least 4 points on the picture and type where they lie (m).',
    hint_select: 'Drag a vertex to move it; double-click it to delete; click an edge midpoint to add one.',
    hint_zone: 'Click the polygon\'s vertices on the picture (at least 3), then Finish.',
    hint_mask: 'Click the mask\'s vertices (detections inside are ignored), then Finish.',
    hint_ground: 'Type X and Y (m) first, then click that ground point on the picture.',
    need3: 'At least 3 points', id_taken: 'That zone id exists', bad_id: 'Zone ids use letters, digits, - and _',
    no_incidents: 'No incidents since the agent started', fps: 'fps', pass: 'PASS', fail: 'FAIL', fix: 'fix',
    unsaved: 'Unsaved changes', area_m2: 'the zone\'s real area (m²); not needed once the ground is calibrated', fitted_area: 'calibrated area', remove_rule: 'Remove rule', item: 'Item', result: 'Result', detail: 'Detail',
    state_streaming: 'streaming', state_connecting: 'connecting', state_down: 'down', state_stopped: 'stopped',
    state_off: 'off', state_unauthorized: 'login refused',
    phase_opened: 'opened', phase_updated: 'updated', phase_resolved: 'resolved', phase_verified: 'verified',
  },
};
// What a rule's key means, in Chinese; the key itself is shown beside it (it is the file's own word).
const KEY_ZH = {
  category: '类别',
  labels: '模型类别',
  min_score: '最低置信度',
  levels: '密度等级（名称:人/平方米）',
  sustain_s: '持续多久才上报（秒）',
  hysteresis: '回差（人/平方米）',
  clear_s: '消失多久算结束（秒）',
  max_count: '人数上限',
  schedule: '生效时段（days=…, hours=…）',
  incident: '事件节奏（秒）',
  vendor_labels: '摊贩类别',
  cue_labels: '摊位线索类别',
  person_labels: '行人类别',
  dwell_s: '停留时长（秒）',
  person_radius: '“有人在旁”距离（倍框宽）',
  min_person_share: '有人在旁的比例',
  sample_every_s: '采样间隔（秒）',
  window: '窗口样本数 N',
  min_present: '至少出现 K 次',
  stationary: '只计静止时间',
  min_count: '同时至少几个',
  exclude_labels: '忽略的类别',
  persist_s: '变化持续（秒）',
  min_changed_fraction: '变化面积比例',
  cell_threshold: '单元差异阈值',
  embedder: '特征模型',
  states: '状态',
  alarm: '报警状态',
  margin: '外扩比例',
  max_occluded: '最大遮挡比例',
  max_examples: '每状态样本上限',
};
const CATEGORY = {
  crowd_density: ['人群聚集', 'Crowd density', '#e53935'],
  street_vending: ['占道经营', 'Street vending', '#fb8c00'],
  hanging_laundry: ['沿街晾挂', 'Hanging laundry', '#1e88e5'],
  bin_overflow: ['垃圾满溢', 'Bin overflow', '#43a047'],
  presence: ['目标滞留', 'Presence', '#8e24aa'],
  scene_change: ['场景变化', 'Scene change', '#00897b'],
  zone_state: ['区域状态', 'Zone state', '#d81b60'],
};

const S = {
  lang: localStorage.getItem('lang') || null, csrf: '', camera: null, cameras: [], edit: null,
  original: '', ruleTypes: [], areas: {}, live: null, mode: 'select', draft: [], drag: null,
  selectedZone: null, dirty: false, timer: null,
};
const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
};
const t = (k) => (T[S.lang] || T['zh-CN'])[k] || k;
const catName = (c) => (CATEGORY[c] ? CATEGORY[c][S.lang === 'en' ? 1 : 0] : c);
const catColour = (c) => (CATEGORY[c] ? CATEGORY[c][2] : '#607d8b');

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin' };
  if (method !== 'GET') opts.headers['X-CSRF-Token'] = S.csrf;
  if (body !== undefined) { opts.headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
  const r = await fetch('/api' + path, opts);
  if (r.status === 401 && path !== '/login') { showLogin(); throw new Error('no session'); }
  const type = r.headers.get('content-type') || '';
  const data = type.includes('json') ? await r.json() : await r.blob();
  return { ok: r.ok, status: r.status, data };
}

function translate() {
  document.documentElement.lang = S.lang;
  for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  $('#lang-toggle').textContent = t('lang');
  if (S.edit) { renderSide(); renderCameras(); }
  setHint();
}

function showLogin() {
  stopPolling();
  for (const s of document.querySelectorAll('section')) s.hidden = true;
  $('#login-view').hidden = false; $('#tabs').hidden = true; $('#logout').hidden = true;
  $('#password').focus();
}

async function login(ev) {
  ev.preventDefault();
  const r = await api('POST', '/login', { password: $('#password').value });
  if (r.ok) { S.csrf = r.data.csrf; S.lang = S.lang || r.data.language; $('#password').value = ''; start(); return; }
  $('#login-error').textContent = r.status === 429 ? t('throttled') + ` (${r.data.message})` : t('wrong_password');
}

async function start() {
  $('#login-view').hidden = true; $('#tabs').hidden = false; $('#logout').hidden = false;
  translate();
  showTab('cameras');
}

function showTab(name) {
  for (const s of document.querySelectorAll('section.tab')) s.hidden = s.id !== name + '-view';
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.tab === name);
  stopPolling();
  if (name === 'cameras') { loadCameras(); S.timer = setInterval(tick, 1000); }
  if (name === 'incidents') { loadIncidents(); S.timer = setInterval(loadIncidents, 5000); }
}
function stopPolling() { if (S.timer) clearInterval(S.timer); S.timer = null; }

async function loadCameras() {
  const r = await api('GET', '/cameras');
  S.cameras = r.data.cameras;
  if (!S.camera && S.cameras.length) await selectCamera(S.cameras[0].id);
  renderCameras();
}

function renderCameras() {
  const list = $('#camera-list'); list.replaceChildren();
  for (const c of S.cameras) {
    const res = c.width ? `${c.width}×${c.height}` : '';
    list.append(el('div', { class: 'cam' + (c.id === S.camera ? ' selected' : ''), 'data-id': c.id, onclick: () => selectCamera(c.id) },
      el('div', {}, el('strong', {}, c.name || c.id), ' ', el('span', { class: 'state ' + c.state }, t('state_' + c.state))),
      el('div', { class: 'meta' }, [c.codec, res, `${c.analysed_fps} ${t('fps')}`].filter(Boolean).join(' · ')),
      c.last_error && c.state !== 'streaming' ? el('div', { class: 'meta error' }, c.last_error) : null));
  }
}

async function selectCamera(id) {
  if (S.dirty && S.camera !== id && !confirm(t('unsaved'))) return;
  S.camera = id; S.live = null; S.selectedZone = null; setMode('select');
  await loadConfig();
  renderCameras();
}

async function loadConfig() {
  const r = await api('GET', `/cameras/${encodeURIComponent(S.camera)}/config`);
  if (!r.ok) { $('#save-status').textContent = r.data.message; return; }
  S.edit = r.data.edit; S.ruleTypes = r.data.rule_types; S.areas = r.data.areas;
  S.original = JSON.stringify(S.edit); S.dirty = false;
  clearErrors(); renderSide(); draw();
}

async function tick() {
  if (!S.camera) return;
  const [img, live, cams] = await Promise.all([
    api('GET', `/cameras/${encodeURIComponent(S.camera)}/live.jpg`),
    api('GET', `/cameras/${encodeURIComponent(S.camera)}/live`),
    api('GET', '/cameras'),
  ]);
  S.cameras = cams.data.cameras; renderCameras();
  if (img.ok && live.ok) {
    const url = URL.createObjectURL(img.data);
    const old = $('#live').src;
    $('#live').onload = () => { if (old.startsWith('blob:')) URL.revokeObjectURL(old); draw(); };
    $('#live').src = url; S.live = live.data; $('#no-frame').hidden = true;
  } else if (!S.live) { $('#no-frame').hidden = false; }
  const cam = S.cameras.find((c) => c.id === S.camera);
  if (cam && S.edit) updateReferences(cam.scene_zones || []);
}

// ---- drawing -------------------------------------------------------------------------------------------
function canvasSize() {
  const c = $('#overlay'); const r = c.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  if (c.width !== Math.round(r.width * dpr) || c.height !== Math.round(r.height * dpr)) {
    c.width = Math.round(r.width * dpr); c.height = Math.round(r.height * dpr);
  }
  return { w: c.width, h: c.height, dpr };
}
function zoneColour(z) {
  const rule = rulesOf(z.id)[0];
  return rule ? catColour(rule.type) : '#90a4ae';
}
function draw() {
  if (!S.edit) return;
  const c = $('#overlay'); const { w, h, dpr } = canvasSize(); const g = c.getContext('2d');
  g.clearRect(0, 0, w, h);
  g.lineWidth = 2 * dpr; g.font = `${13 * dpr}px sans-serif`;
  if (S.live && $('#show-boxes').checked) {
    g.strokeStyle = '#ffeb3b'; g.fillStyle = '#ffeb3b';
    for (const b of S.live.boxes) {
      const [x1, y1, x2, y2] = b.bbox;
      g.strokeRect(x1 * w, y1 * h, (x2 - x1) * w, (y2 - y1) * h);
      g.fillText(`${b.label} ${b.score.toFixed(2)}`, x1 * w + 2, y1 * h - 3);
    }
  }
  for (const m of S.edit.masks) poly(g, m.points, w, h, '#000000', true, dpr);
  for (const z of S.edit.zones) {
    const col = zoneColour(z);
    poly(g, z.points, w, h, col, false, dpr, z.id === S.selectedZone);
    const cx = z.points.reduce((a, p) => a + p[0], 0) / z.points.length;
    const cy = z.points.reduce((a, p) => a + p[1], 0) / z.points.length;
    const label = [z.id, ...rulesOf(z.id).map((r) => catName(r.type))].join(' · ');
    g.fillStyle = '#000a'; const tw = g.measureText(label).width;
    g.fillRect(cx * w - tw / 2 - 4 * dpr, cy * h - 14 * dpr, tw + 8 * dpr, 18 * dpr);
    g.fillStyle = '#fff'; g.fillText(label, cx * w - tw / 2, cy * h);
  }
  const gr = S.edit.ground;
  if (gr) gr.image.forEach((p, i) => {
    g.fillStyle = '#00e5ff'; g.beginPath(); g.arc(p[0] * w, p[1] * h, 5 * dpr, 0, 7); g.fill();
    g.fillStyle = '#fff'; g.fillText(`(${gr.ground[i][0]}, ${gr.ground[i][1]}) m`, p[0] * w + 7 * dpr, p[1] * h - 6 * dpr);
  });
  if (S.draft.length) {
    g.strokeStyle = '#fff'; g.setLineDash([6 * dpr, 4 * dpr]); g.beginPath();
    S.draft.forEach((p, i) => (i ? g.lineTo(p[0] * w, p[1] * h) : g.moveTo(p[0] * w, p[1] * h)));
    g.stroke(); g.setLineDash([]);
    for (const p of S.draft) { g.fillStyle = '#fff'; g.beginPath(); g.arc(p[0] * w, p[1] * h, 4 * dpr, 0, 7); g.fill(); }
  }
}
function poly(g, pts, w, h, col, filled, dpr, selected) {
  if (!pts.length) return;
  g.beginPath(); pts.forEach((p, i) => (i ? g.lineTo(p[0] * w, p[1] * h) : g.moveTo(p[0] * w, p[1] * h))); g.closePath();
  g.fillStyle = filled ? '#0008' : col + '33'; g.fill();
  g.strokeStyle = col; g.lineWidth = (selected ? 4 : 2) * dpr; g.stroke();
  if (S.mode === 'select') for (let i = 0; i < pts.length; i++) {
    const p = pts[i], q = pts[(i + 1) % pts.length];
    g.fillStyle = col; g.beginPath(); g.arc(p[0] * w, p[1] * h, 5 * dpr, 0, 7); g.fill();
    g.fillStyle = '#fff8'; g.beginPath(); g.arc((p[0] + q[0]) / 2 * w, (p[1] + q[1]) / 2 * h, 3 * dpr, 0, 7); g.fill();
  }
}

// ---- pointer editing -----------------------------------------------------------------------------------
const round4 = (v) => Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;
function pointOf(ev) {
  const r = $('#overlay').getBoundingClientRect();
  return [round4((ev.clientX - r.left) / r.width), round4((ev.clientY - r.top) / r.height)];
}
function shapes() { return [...S.edit.zones.map((z) => z.points), ...S.edit.masks.map((m) => m.points)]; }
function near(p, q) {
  const r = $('#overlay').getBoundingClientRect();
  return Math.hypot((p[0] - q[0]) * r.width, (p[1] - q[1]) * r.height) < 9;
}
function onDown(ev) {
  if (!S.edit) return;
  const p = pointOf(ev);
  if (S.mode === 'zone' || S.mode === 'mask') { S.draft.push(p); draw(); return; }
  if (S.mode === 'ground') { addGroundPoint(p); return; }
  for (const pts of shapes()) {
    for (let i = 0; i < pts.length; i++) {
      if (near(p, pts[i])) { S.drag = { pts, i }; $('#overlay').setPointerCapture(ev.pointerId); return; }
      const q = pts[(i + 1) % pts.length]; const mid = [(pts[i][0] + q[0]) / 2, (pts[i][1] + q[1]) / 2];
      if (near(p, mid)) { pts.splice(i + 1, 0, p); S.drag = { pts, i: i + 1 }; changed(); return; }
    }
  }
  const z = S.edit.zones.find((z) => inside(p, z.points));
  S.selectedZone = z ? z.id : null; renderSide(); draw();
}
function onMove(ev) {
  if (!S.drag) return;
  S.drag.pts[S.drag.i] = pointOf(ev); changed(false);
}
function onUp() { if (S.drag) { S.drag = null; changed(); } }
function onDouble(ev) {
  if (S.mode !== 'select') return;
  const p = pointOf(ev);
  for (const pts of shapes()) {
    const i = pts.findIndex((q) => near(p, q));
    if (i >= 0 && pts.length > 3) { pts.splice(i, 1); changed(); return; }
  }
}
function inside(p, pts) {
  let c = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    if ((pts[i][1] > p[1]) !== (pts[j][1] > p[1]) &&
        p[0] < (pts[j][0] - pts[i][0]) * (p[1] - pts[i][1]) / (pts[j][1] - pts[i][1]) + pts[i][0]) c = !c;
  }
  return c;
}
function setMode(mode) {
  S.mode = mode; S.draft = [];
  for (const b of document.querySelectorAll('#toolbar .mode')) b.classList.toggle('active', b.dataset.mode === mode);
  $('#draw-controls').hidden = !(mode === 'zone' || mode === 'mask');
  $('#new-zone-id').hidden = mode !== 'zone';
  $('#ground-controls').hidden = mode !== 'ground';
  if (mode === 'zone' && S.edit) {
    let n = S.edit.zones.length + 1;
    while (S.edit.zones.some((z) => z.id === `zone-${n}`)) n++;
    $('#new-zone-id').value = `zone-${n}`;
  }
  setHint(); draw();
}
function setHint() { $('#hint').textContent = t('hint_' + S.mode); }
function finishShape() {
  if (S.draft.length < 3) { $('#hint').textContent = t('need3'); return; }
  if (S.mode === 'zone') {
    const id = $('#new-zone-id').value.trim();
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) { $('#hint').textContent = t('bad_id'); return; }
    if (S.edit.zones.some((z) => z.id === id)) { $('#hint').textContent = t('id_taken'); return; }
    S.edit.zones.push({ id, name: null, points: S.draft }); S.selectedZone = id;
  } else {
    S.edit.masks.push({ points: S.draft, labels: [] });
  }
  S.draft = []; setMode('select'); changed();
}
function addGroundPoint(p) {
  const x = parseFloat($('#ground-x').value), y = parseFloat($('#ground-y').value);
  if (!Number.isFinite(x) || !Number.isFinite(y)) { $('#hint').textContent = t('hint_ground'); return; }
  S.edit.ground = S.edit.ground || { image: [], ground: [] };
  S.edit.ground.image.push(p); S.edit.ground.ground.push([x, y]);
  $('#ground-x').value = ''; $('#ground-y').value = ''; $('#ground-x').focus();
  changed();
}
function changed(full = true) {
  S.dirty = JSON.stringify(S.edit) !== S.original;
  $('#save-status').textContent = S.dirty ? t('unsaved') : ''; $('#save-status').className = '';
  draw();
  if (full) { renderSide(); refreshAreas(); }
}
async function refreshAreas() {
  const r = await api('POST', '/areas', { ground: S.edit.ground, zones: S.edit.zones });
  if (r.ok) { S.areas = r.data; renderGround(); renderZoneAreas(); }
}

// ---- side panel: zones, their rules, masks, ground -----------------------------------------------------
function rulesOf(zoneId) {
  const out = [];
  for (const [type, list] of Object.entries(S.edit.rules)) {
    list.forEach((r, index) => { if (r.zone === zoneId) out.push({ type, index, rule: r }); });
  }
  return out;
}
function renderSide() {
  const zl = $('#zone-list'); zl.replaceChildren();
  const refs = (S.cameras.find((c) => c.id === S.camera) || {}).scene_zones || [];
  for (const z of S.edit.zones) {
    const rules = rulesOf(z.id);
    const item = el('div', { class: 'zone' + (z.id === S.selectedZone ? ' selected' : ''), 'data-id': z.id },
      el('div', { class: 'head' },
        el('span', { class: 'zid' }, z.id),
        el('input', { class: 'zone-name', size: 12, placeholder: t('name'), value: z.name || '',
          onchange: (e) => { z.name = e.target.value || null; changed(); } }),
        el('button', { class: 'delete-zone', onclick: () => deleteZone(z.id) }, t('delete'))),
      el('div', {}, `${z.points.length} ${t('points')} `, ...rules.map((r) =>
        chip(catName(r.type), catColour(r.type)))),
      el('div', { class: 'area-line' }, el('span', { class: 'zone-area' }), ' ', areaInput(z), ' m²'),
      referenceLine(z.id, rules, refs),
      ...rules.map((r) => ruleForm(r.type, r.index, r.rule)),
      addRuleSelect(z.id),
      el('div', { class: 'field-error zone-error' }));
    zl.append(item);
  }
  const ml = $('#mask-list'); ml.replaceChildren();
  S.edit.masks.forEach((m, i) => ml.append(el('div', { class: 'mask', 'data-index': i },
    `#${i + 1} · ${m.points.length} ${t('points')} `,
    el('button', { onclick: () => { S.edit.masks.splice(i, 1); changed(); } }, t('delete')))));
  renderGround(); renderZoneAreas();
}
// The zone's real area (m²), for densities where the ground is not calibrated; empty: none in the file.
function areaInput(z) {
  const input = el('input', { class: 'zone-area-m2', size: 5, placeholder: 'm²', title: t('area_m2'),
    value: z.area_m2 === undefined || z.area_m2 === null ? '' : z.area_m2 });
  input.addEventListener('input', () => {
    const v = input.value.trim();
    if (v === '') delete z.area_m2; else z.area_m2 = Number.isFinite(Number(v)) ? Number(v) : v;
    changed(false);
  });
  return input;
}
function chip(text, colour) { const c = el('span', { class: 'chip' }, text); c.style.background = colour; return c; }
function referenceLine(zoneId, rules, refs) {
  if (!rules.some((r) => r.type === 'scene_change')) return null;
  const has = (refs.find((s) => s.zone === zoneId) || {}).reference;
  return el('div', { class: 'reference', 'data-zone': zoneId },
    el('span', { class: has ? 'ok' : 'error' }, t(has ? 'reference_yes' : 'reference_no')), ' ',
    el('button', { class: 'take-reference', onclick: () => takeReference(zoneId) }, t('take_reference')));
}
function updateReferences(refs) {
  for (const line of document.querySelectorAll('.reference')) {
    const has = (refs.find((s) => s.zone === line.dataset.zone) || {}).reference;
    const span = line.querySelector('span'); span.textContent = t(has ? 'reference_yes' : 'reference_no');
    span.className = has ? 'ok' : 'error';
  }
}
async function takeReference(zoneId) {
  const r = await api('POST', `/cameras/${encodeURIComponent(S.camera)}/zones/${encodeURIComponent(zoneId)}/reference`);
  $('#save-status').textContent = r.ok ? t('reference_taken') : r.data.message;
}
function addRuleSelect(zoneId) {
  const s = el('select', { class: 'add-rule', 'data-zone': zoneId },
    el('option', { value: '' }, t('add_rule')),
    ...S.ruleTypes.map((rt) => el('option', { value: rt.name }, catName(rt.name))));
  s.addEventListener('change', () => {
    if (!s.value) return;
    const rule = { zone: zoneId };
    const type = S.ruleTypes.find((rt) => rt.name === s.value);
    for (const k of type.keys) if (k.required && k.name !== 'zone') rule[k.name] = k.kind === 'strings' ? [] : '';
    (S.edit.rules[s.value] = S.edit.rules[s.value] || []).push(rule);
    changed();
  });
  return s;
}
function deleteZone(id) {
  S.edit.zones = S.edit.zones.filter((z) => z.id !== id);
  for (const list of Object.values(S.edit.rules)) for (let i = list.length - 1; i >= 0; i--) if (list[i].zone === id) list.splice(i, 1);
  changed();
}

// A rule's form follows the configuration's own keys; an empty field means the default (shown greyed).
function ruleForm(type, index, rule) {
  const schema = S.ruleTypes.find((rt) => rt.name === type);
  const form = el('div', { class: 'rule-form', 'data-type': type, 'data-index': index },
    el('div', { class: 'title' }, chip(catName(type), catColour(type)),
      el('button', { class: 'remove-rule', onclick: () => { S.edit.rules[type].splice(index, 1); changed(); } }, t('remove_rule'))));
  for (const k of (schema ? schema.keys : [])) {
    if (k.name === 'zone') continue;
    const input = el('input', { type: k.kind === 'bool' ? 'checkbox' : 'text', 'data-key': k.name,
      placeholder: k.default === null ? '' : show(k.kind, k.default) });
    if (k.kind === 'bool') input.checked = rule[k.name] === undefined ? !!k.default : !!rule[k.name];
    else input.value = rule[k.name] === undefined ? '' : show(k.kind, rule[k.name]);
    input.addEventListener(k.kind === 'bool' ? 'change' : 'input', () => {
      const v = k.kind === 'bool' ? input.checked : parse(k.kind, input.value);
      if (v === undefined) delete rule[k.name]; else rule[k.name] = v;
      changed(false);
    });
    const said = S.lang === 'en' || !KEY_ZH[k.name] ? k.name : `${KEY_ZH[k.name]} ${k.name}`;
    form.append(el('label', {}, el('span', {}, said + (k.required ? ' *' : '')), input),
      el('div', { class: 'field-error', 'data-key': k.name }));
  }
  form.append(el('div', { class: 'field-error rule-error' }));
  return form;
}
// Values as a person types them: lists comma-separated, crowd levels `name:density`, tables `key=value`.
function show(kind, v) {
  if (v === null || v === undefined) return '';
  if (kind === 'strings') return v.join(', ');
  if (kind === 'levels') return v.map((l) => `${l.name}:${l.min_density}`).join(', ');
  if (kind === 'schedule' || kind === 'incident') return Object.entries(v).map(([a, b]) => `${a}=${Array.isArray(b) ? b.join('|') : b}`).join(', ');
  return String(v);
}
function parse(kind, text) {
  text = text.trim();
  if (text === '') return undefined;
  const num = (s) => (s.trim() !== '' && Number.isFinite(Number(s)) ? Number(s) : s.trim());
  if (kind === 'number' || kind === 'integer') return num(text);
  if (kind === 'strings') return text.split(',').map((s) => s.trim()).filter(Boolean);
  if (kind === 'levels') return text.split(',').map((s) => { const [name, d] = s.split(':'); return { name: (name || '').trim(), min_density: num(d || '') }; });
  if (kind === 'schedule' || kind === 'incident') {
    const o = {};
    for (const part of text.split(',')) {
      const [a, b] = part.split('='); if (!a || b === undefined) continue;
      o[a.trim()] = kind === 'schedule' ? b.split('|').map((s) => s.trim()).filter(Boolean) : num(b);
    }
    return o;
  }
  return text;
}
function renderGround() {
  const g = S.edit.ground; const box = $('#ground-info'); box.replaceChildren();
  if (!g || !g.image.length) { box.append(t('no_ground')); return; }
  const fit = S.areas.fit || {};
  box.append(el('div', {}, `${g.image.length} ${t('points')}; `,
    fit.error ? el('span', { class: 'error' }, fit.error) : fit.max_residual_m !== undefined ? `${t('fit')} ${fit.max_residual_m} m` : ''),
    el('button', { id: 'clear-ground-2', onclick: () => { S.edit.ground = null; changed(); } }, t('clear_ground')));
}
function renderZoneAreas() {
  const areas = (S.areas && S.areas.areas) || {};
  for (const item of document.querySelectorAll('.zone')) {
    const a = areas[item.dataset.id];
    item.querySelector('.zone-area').textContent = a ? `${t('fitted_area')} ${a} m²；` : '';
  }
}

// ---- save ----------------------------------------------------------------------------------------------
function clearErrors() {
  $('#save-errors').replaceChildren();
  for (const e of document.querySelectorAll('.field-error')) e.textContent = '';
  for (const e of document.querySelectorAll('input.invalid')) e.classList.remove('invalid');
}
async function save() {
  clearErrors(); $('#save-status').textContent = '…';
  const r = await api('POST', `/cameras/${encodeURIComponent(S.camera)}/config`, S.edit);
  if (r.ok) {
    $('#save-status').textContent = r.data.saved ? t('saved') : t('unchanged');
    $('#save-status').className = 'ok';
    await loadConfig();
    $('#save-status').textContent = r.data.saved ? t('saved') : t('unchanged'); $('#save-status').className = 'ok';
    return;
  }
  $('#save-status').textContent = t('invalid'); $('#save-status').className = 'error';
  S.shownError = false;
  for (const e of r.data.errors || [{ message: r.data.message }]) placeError(e);
}
function placeError(e) {
  const f = e.field;
  let spot = null;
  if (f && f.section === 'zone') {
    const z = S.edit.zones[f.index];
    spot = z && document.querySelector(`.zone[data-id="${CSS.escape(z.id)}"] .zone-error`);
  } else if (f) {
    // A rule's error goes next to its field, or under the rule when it is about the rule as a whole.
    const form = document.querySelector(`.rule-form[data-type="${CSS.escape(f.section)}"][data-index="${f.index}"]`);
    const key = f.key ? CSS.escape(f.key) : '';
    spot = form && ((key && form.querySelector(`.field-error[data-key="${key}"]`)) || form.querySelector('.rule-error'));
    const input = form && key && form.querySelector(`input[data-key="${key}"]`);
    if (input) input.classList.add('invalid');
  }
  if (spot) spot.textContent = e.message; else $('#save-errors').append(el('li', {}, e.message));
  if (!S.shownError) { S.shownError = true; (spot || $('#save-errors')).scrollIntoView({ block: 'center' }); }
}

// ---- incidents and check -------------------------------------------------------------------------------
async function loadIncidents() {
  const r = await api('GET', '/incidents'); const list = $('#incident-list'); list.replaceChildren();
  if (!r.data.events.length) { list.append(t('no_incidents')); return; }
  for (const e of r.data.events) {
    list.append(el('div', { class: 'incident', 'data-incident': e.incident_id },
      el('div', {}, chip(catName(e.category), catColour(e.category)), ' ', el('strong', {}, `${e.camera.id} / ${e.zone.id}`)),
      el('div', { class: 'phase' }, `${t('phase_' + e.phase)} · ${e.local_time || e.time}`),
      el('div', { class: 'description' }, e.description || ''),
      ...e.evidence_files.slice(0, 1).map((f) => el('img', { src: '/api/evidence/' + encodeURIComponent(f), alt: f, loading: 'lazy' }))));
  }
}
async function runCheck() {
  $('#check-status').textContent = t('checking'); $('#check-table').replaceChildren();
  const r = await api('POST', '/check');
  $('#check-status').textContent = '';
  $('#check-table').append(el('tr', {}, el('th', {}, t('item')), el('th', {}, t('result')), el('th', {}, t('detail'))));
  for (const row of r.data.rows) {
    $('#check-table').append(el('tr', {}, el('td', {}, row.item),
      el('td', { class: row.pass ? 'pass' : 'fail' }, t(row.pass ? 'pass' : 'fail')),
      el('td', {}, row.detail, row.fix ? el('div', { class: 'error' }, `${t('fix')}: ${row.fix}`) : null)));
  }
}

// ---- wiring --------------------------------------------------------------------------------------------
document.addEventListener('DOMContentLoaded', async () => {
  $('#login-form').addEventListener('submit', login);
  $('#logout').addEventListener('click', async () => { await api('POST', '/logout'); S.camera = null; showLogin(); });
  $('#lang-toggle').addEventListener('click', () => { S.lang = S.lang === 'en' ? 'zh-CN' : 'en'; localStorage.setItem('lang', S.lang); translate(); });
  for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => showTab(b.dataset.tab));
  for (const b of document.querySelectorAll('#toolbar .mode')) b.addEventListener('click', () => setMode(b.dataset.mode));
  $('#finish-shape').addEventListener('click', finishShape);
  $('#cancel-shape').addEventListener('click', () => setMode('select'));
  $('#clear-ground').addEventListener('click', () => { S.edit.ground = null; changed(); });
  $('#show-boxes').addEventListener('change', draw);
  $('#save').addEventListener('click', save);
  $('#revert').addEventListener('click', loadConfig);
  $('#run-check').addEventListener('click', runCheck);
  const c = $('#overlay');
  c.addEventListener('pointerdown', onDown); c.addEventListener('pointermove', onMove);
  c.addEventListener('pointerup', onUp); c.addEventListener('dblclick', onDouble);
  window.addEventListener('resize', draw);
  const r = await fetch('/api/session', { credentials: 'same-origin' });
  if (r.ok) { const d = await r.json(); S.csrf = d.csrf; S.lang = S.lang || d.language; start(); }
  else { S.lang = S.lang || 'zh-CN'; translate(); showLogin(); }
});
