/*
 * dom.js - the dashboard's DOM helpers: elements from data, never from
 * markup.  Every text that comes from the API (payloads, keys, errors,
 * queue names) reaches the page through textContent or an attribute set
 * with setAttribute, so that "<script>" in a payload is shown as those
 * eight characters and never parsed; no script here parses markup
 * (tests/integration/test_dashboard.c checks the scripts for the calls
 * that would).
 * Charts are SVG drawn with createElementNS, which keeps the
 * Content-Security-Policy strict (no inline style, no library).
 */
'use strict';

var WQ = window.WQ || {};
window.WQ = WQ;

(function () {
  var SVG = 'http://www.w3.org/2000/svg';

  /* el('td', {class: 'num'}, 'text', child, ...): attributes are set one
   * by one (names are ours, values may be data), children are nodes or
   * text (text nodes, whatever they hold); null children are skipped. */
  function el(tag, attrs) {
    var e = document.createElement(tag);
    setAttrs(e, attrs);
    for (var i = 2; i < arguments.length; i++)
      append(e, arguments[i]);
    return e;
  }

  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    setAttrs(e, attrs);
    for (var i = 2; i < arguments.length; i++)
      append(e, arguments[i]);
    return e;
  }

  function setAttrs(e, attrs) {
    if (!attrs)
      return;
    Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false)
        return;
      if (k === 'onclick' || k === 'onsubmit' || k === 'onchange') {
        e.addEventListener(k.slice(2), v);
        return;
      }
      if (k === 'href' && !/^#/.test(String(v)))
        throw new Error('only in-page links: ' + v);
      e.setAttribute(k, v === true ? '' : String(v));
    });
  }

  function append(e, c) {
    if (c === null || c === undefined || c === false)
      return;
    if (Array.isArray(c)) {
      c.forEach(function (x) { append(e, x); });
      return;
    }
    e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }

  /* Replaces the children of e with the given nodes. */
  function fill(e) {
    while (e.firstChild)
      e.removeChild(e.firstChild);
    for (var i = 1; i < arguments.length; i++)
      append(e, arguments[i]);
    return e;
  }

  /* "—" for null, else the value as text. */
  function text(v) {
    if (v === null || v === undefined)
      return '\u2014';
    if (typeof v === 'object')
      return JSON.stringify(v);
    return String(v);
  }

  /* An RFC 3339 time as local "YYYY-MM-DD HH:MM:SS", with the ISO text
   * as its tooltip. */
  function when(v) {
    if (!v)
      return el('span', null, '\u2014');
    var d = new Date(v);
    if (isNaN(d.getTime()))
      return el('span', null, String(v));
    var p = function (n) { return (n < 10 ? '0' : '') + n; };
    return el('time', { datetime: v, title: v },
      d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) +
      ' ' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()));
  }

  /* Seconds as "42 s", "3 min 5 s", "2 h 10 min". */
  function age(s) {
    if (s === null || s === undefined)
      return '\u2014';
    s = Math.round(Number(s));
    if (s < 60)
      return s + ' s';
    if (s < 3600)
      return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }

  /*
   * A line chart of per-minute counts: series = [{name, cls, values}],
   * all of the same length, oldest first; step_s between points.  The
   * colours are CSS classes (app.css), not style attributes.
   */
  function lineChart(series, stepS, title) {
    var W = 360, H = 120, L = 34, B = 18, T = 16, R = 6;
    var n = 0, max = 1;
    series.forEach(function (s) {
      n = Math.max(n, s.values.length);
      s.values.forEach(function (v) { max = Math.max(max, v); });
    });
    var x = function (i) { return L + (n <= 1 ? 0 : i * (W - L - R) / (n - 1)); };
    var y = function (v) { return T + (H - T - B) * (1 - v / max); };
    var root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'chart',
      role: 'img', 'aria-label': title });
    root.appendChild(svg('title', null, title));
    root.appendChild(svg('line', { x1: L, y1: y(0), x2: W - R, y2: y(0), class: 'axis' }));
    root.appendChild(svg('line', { x1: L, y1: T, x2: L, y2: y(0), class: 'axis' }));
    root.appendChild(svg('text', { x: L - 4, y: T + 4, class: 'tick end' }, String(max)));
    root.appendChild(svg('text', { x: L - 4, y: y(0), class: 'tick end' }, '0'));
    root.appendChild(svg('text', { x: L, y: H - 4, class: 'tick' },
      '-' + Math.round(n * stepS / 60) + ' min'));
    root.appendChild(svg('text', { x: W - R, y: H - 4, class: 'tick end' }, 'now'));
    series.forEach(function (s, k) {
      var pts = s.values.map(function (v, i) {
        return x(i).toFixed(1) + ',' + y(v).toFixed(1);
      }).join(' ');
      root.appendChild(svg('polyline', { points: pts, class: 'series ' + s.cls }));
      root.appendChild(svg('text', { x: L + 8 + k * 90, y: 11, class: 'legend ' + s.cls },
        s.name + ' ' + s.values.reduce(function (a, b) { return a + b; }, 0)));
    });
    return root;
  }

  /*
   * A timeline of attempts: one bar per attempt from its start to its
   * end on a shared time axis, classed by outcome.
   */
  function timeline(attempts) {
    var W = 600, rowH = 22, L = 70, R = 10, T = 6;
    var H = T + attempts.length * rowH + 20;
    var t0 = Infinity, t1 = -Infinity;
    attempts.forEach(function (a) {
      var s = Date.parse(a.started_at), f = a.finished_at ? Date.parse(a.finished_at) : Date.now();
      if (!isNaN(s)) { t0 = Math.min(t0, s); t1 = Math.max(t1, f); }
    });
    if (!isFinite(t0)) { t0 = 0; t1 = 1; }
    if (t1 <= t0) t1 = t0 + 1;
    var x = function (t) { return L + (t - t0) * (W - L - R) / (t1 - t0); };
    var root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'timeline',
      role: 'img', 'aria-label': 'attempts on a time axis' });
    attempts.forEach(function (a, i) {
      var s = Date.parse(a.started_at), f = a.finished_at ? Date.parse(a.finished_at) : Date.now();
      var yy = T + i * rowH;
      root.appendChild(svg('text', { x: 4, y: yy + 14, class: 'tick' }, 'attempt ' + a.attempt));
      if (isNaN(s))
        return;
      var w = Math.max(3, x(f) - x(s));
      root.appendChild(svg('rect', { x: x(s).toFixed(1), y: yy + 3, width: w.toFixed(1),
        height: rowH - 8, class: 'bar ' + (a.outcome || 'running') },
        svg('title', null, (a.outcome || 'running') + ', ' + text(a.duration_ms) + ' ms' +
          (a.error ? ': ' + a.error : ''))));
    });
    root.appendChild(svg('text', { x: L, y: H - 4, class: 'tick' }, new Date(t0).toISOString()));
    root.appendChild(svg('text', { x: W - R, y: H - 4, class: 'tick end' },
      '+' + ((t1 - t0) / 1000).toFixed(1) + ' s'));
    return root;
  }

  /* Saves `blob` as a file named `name` (the browser's download): the
   * one link not in the page, to a blob: URL made here from bytes the API
   * answered, never from a text of the data. */
  function saveBlob(blob, name) {
    var url = URL.createObjectURL(blob);
    var a = document.createElement('a');
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
  }

  WQ.saveBlob = saveBlob;
  WQ.el = el;
  WQ.svg = svg;
  WQ.fill = fill;
  WQ.text = text;
  WQ.when = when;
  WQ.age = age;
  WQ.lineChart = lineChart;
  WQ.timeline = timeline;
})();
