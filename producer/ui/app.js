/*
 * app.js - the dashboard's pages and their router (location.hash):
 *
 *   #/login                  a token, checked with GET /v1/whoami
 *   #/overview               per queue: counts, charts of the last hour
 *   #/queue/Q?state=&type=&key_prefix=    the queue's tasks, newest first
 *   #/task/ID                one task: fields, payload, result, attempts
 *   #/dead?queue=&type=&error=            dead letters: replay, purge;
 *                            and the undecodable messages, raw bytes
 *                            downloadable
 *   #/workers, #/periodic
 *
 * A page draws its frame once and its data on every refresh (POLL_MS),
 * so live numbers change without a reload and a half-typed filter is
 * kept.  Acting buttons (retry, cancel, replay, purge) exist only for a
 * token with the admin scope, and each asks for a confirmation first;
 * the API checks the scope again whatever the page shows.
 */
'use strict';

(function () {
  var WQ = window.WQ, el = WQ.el, fill = WQ.fill, text = WQ.text;
  var POLL_MS = 3000, HISTORY_EVERY = 5, PAGE = 50;
  var STATES = ['', 'scheduled', 'queued', 'running', 'retry_wait',
    'succeeded', 'dead', 'cancelled'];
  var CANCELLABLE = { scheduled: 1, queued: 1, retry_wait: 1, running: 1 };
  var RETRYABLE = { dead: 1, cancelled: 1 };

  var page = null, ticks = 0;

  WQ.scopes = [];
  function isAdmin() { return WQ.scopes.indexOf('admin') >= 0; }

  /* ---- route ----------------------------------------------------------- */

  function parseHash() {
    var h = location.hash.replace(/^#\/?/, '');
    var qi = h.indexOf('?'), query = {};
    var path = qi >= 0 ? h.slice(0, qi) : h;
    if (qi >= 0)
      h.slice(qi + 1).split('&').forEach(function (kv) {
        if (!kv) return;
        var i = kv.indexOf('=');
        var k = decodeURIComponent(i >= 0 ? kv.slice(0, i) : kv);
        query[k] = i >= 0 ? decodeURIComponent(kv.slice(i + 1).replace(/\+/g, ' ')) : '';
      });
    var parts = path.split('/').map(function (p) {
      try { return decodeURIComponent(p); } catch (e) { return p; }
    });
    return { name: parts[0] || 'overview', arg: parts[1], query: query };
  }

  function hashOf(name, arg, query) {
    var h = '#/' + name + (arg !== undefined ? '/' + encodeURIComponent(arg) : '');
    var q = Object.keys(query || {}).filter(function (k) {
      return query[k] !== '' && query[k] !== undefined && query[k] !== null;
    }).map(function (k) {
      return encodeURIComponent(k) + '=' + encodeURIComponent(query[k]);
    });
    return h + (q.length ? '?' + q.join('&') : '');
  }

  WQ.go = function (h) {
    if (location.hash === h)
      route();
    else
      location.hash = h;
  };

  function route() {
    var r = parseHash(), main = document.getElementById('main');
    notice('');
    closeConfirm();
    if (!WQ.token() && r.name !== 'login') {
      WQ.go('#/login');
      return;
    }
    var make = PAGES[r.name] || PAGES.notfound;
    document.body.setAttribute('data-page', r.name);
    navMark(r.name);
    page = make(r);
    fill(main, page.frame);
    refresh(true);
  }

  /* One refresh of a page at a time; a new page starts its own at once
   * (an old page's late answer fills nodes no longer shown). */
  function refresh(first) {
    var p = page;
    if (!p || !p.refresh || p.busy)
      return;
    p.busy = true;
    document.body.setAttribute('data-loading', '');
    Promise.resolve().then(function () {
      return p.refresh(first);
    }).then(function () {
      if (p !== page)
        return;
      document.body.setAttribute('data-refreshed', String(Date.now()));
      status('updated ' + new Date().toLocaleTimeString());
    }, function (e) {
      status('refresh failed: ' + (e && e.message || e));
    }).then(function () {
      p.busy = false;
      if (p === page)
        document.body.removeAttribute('data-loading');
    });
  }

  /* ---- frame pieces ---------------------------------------------------- */

  function notice(msg, bad) {
    var n = document.getElementById('notice');
    fill(n, msg);
    n.className = msg ? (bad ? 'notice bad' : 'notice') : 'notice empty';
  }
  function status(msg) { fill(document.getElementById('status'), msg); }

  function navMark(name) {
    var links = document.querySelectorAll('#nav a');
    for (var i = 0; i < links.length; i++)
      links[i].className = links[i].getAttribute('data-page') === name ? 'on' : '';
    var who = document.getElementById('who');
    fill(who, WQ.token() ? [WQ.scopes.join(', ') || '?', ' ',
      el('button', { type: 'button', id: 'logout', onclick: function () {
        WQ.logout();
        WQ.go('#/login');
      } }, 'Log out')] : '');
  }

  /* A confirmation in the page (no window.confirm): `what` says exactly
   * what will happen; `run` is called once on OK. */
  function confirmThen(what, okText, run) {
    var box = document.getElementById('confirm');
    fill(box, el('div', { class: 'confirm-box', role: 'alertdialog',
      'aria-labelledby': 'confirm-text' },
      el('p', { id: 'confirm-text' }, what),
      el('button', { type: 'button', id: 'confirm-ok', class: 'danger',
        onclick: function () { closeConfirm(); run(); } }, okText),
      ' ',
      el('button', { type: 'button', id: 'confirm-cancel',
        onclick: closeConfirm }, 'Cancel')));
    box.className = 'open';
    document.getElementById('confirm-cancel').focus();
  }
  function closeConfirm() {
    var box = document.getElementById('confirm');
    fill(box);
    box.className = '';
  }

  /* Runs an acting request, says its outcome, refreshes the page. */
  function act(promise, say) {
    return promise.then(function (r) {
      notice(say(r));
      refresh(false);
    }, function (e) {
      notice('refused (' + e.status + '): ' + e.message, true);
    });
  }

  function taskLink(id) { return el('a', { href: hashOf('task', id), class: 'id' }, id); }
  function queueLink(q) { return el('a', { href: hashOf('queue', q) }, q); }
  function stateTag(s) { return el('span', { class: 'state ' + s }, text(s)); }

  function td(k, v, cls) {
    return el('td', { 'data-k': k, class: cls || null }, v);
  }

  /* A filter form whose fields are `fields` [{name, label, options?}];
   * submitting it moves to the same page with those query values. */
  function filterForm(fields, values, onSubmit) {
    var inputs = {};
    var form = el('form', { class: 'filters', onsubmit: function (ev) {
      ev.preventDefault();
      var q = {};
      Object.keys(inputs).forEach(function (k) { q[k] = inputs[k].value.trim(); });
      onSubmit(q);
    } });
    fields.forEach(function (f) {
      var input;
      if (f.options) {
        input = el('select', { name: f.name, id: 'f-' + f.name });
        f.options.forEach(function (o) {
          /* a value, or [value, label] */
          var v = Array.isArray(o) ? o[0] : o, label = Array.isArray(o) ? o[1] : o;
          var opt = el('option', { value: v }, label || 'any');
          if ((values[f.name] || '') === v) opt.selected = true;
          input.appendChild(opt);
        });
      } else {
        input = el('input', { name: f.name, id: 'f-' + f.name, type: 'text',
          placeholder: f.placeholder || '', autocomplete: 'off' });
        input.value = values[f.name] || '';
      }
      inputs[f.name] = input;
      form.appendChild(el('label', null, f.label, ' ', input));
    });
    form.appendChild(el('button', { type: 'submit', id: 'f-apply' }, 'Apply'));
    return form;
  }

  /* ---- pages ----------------------------------------------------------- */

  var PAGES = {};

  PAGES.login = function () {
    var input = el('input', { id: 'token', type: 'password', autocomplete: 'off',
      required: true, placeholder: 'token' });
    var err = el('p', { id: 'login-error', class: 'bad' });
    var form = el('form', { id: 'login', onsubmit: function (ev) {
      ev.preventDefault();
      var t = input.value.trim();
      fill(err);
      WQ.call('GET', '/v1/whoami', null, null, t).then(function (r) {
        WQ.setToken(t);
        WQ.scopes = r.scopes || [];
        WQ.go('#/overview');
      }, function (e) {
        fill(err, e.status === 401 ? 'This token is not known to the producer.'
          : 'Cannot log in (' + e.status + '): ' + e.message);
      });
    } },
      el('h1', null, 'workq'),
      el('p', null, 'A token of the producer\'s tokens file (read to view, admin to act). ' +
        'It is kept in this tab only (sessionStorage) and sent as a bearer token.'),
      el('label', null, 'Token ', input), ' ',
      el('button', { type: 'submit', id: 'login-button' }, 'Log in'), err);
    return { frame: form };
  };

  PAGES.notfound = function () {
    return { frame: el('p', null, 'No such page. ', el('a', { href: '#/overview' }, 'Overview')) };
  };

  PAGES.overview = function () {
    var body = el('tbody');
    var charts = el('div', { id: 'charts', class: 'charts' });
    var err = el('p', { id: 'broker-error', class: 'bad' });
    var frame = el('section', null,
      el('h1', null, 'Queues'), err,
      el('table', { id: 'stats' },
        el('thead', null, el('tr', null,
          el('th', null, 'queue'),
          el('th', { title: 'ready on RabbitMQ, or the consumer lag on Kafka' }, 'waiting on broker'),
          el('th', null, 'queued'), el('th', null, 'scheduled'),
          el('th', null, 'running'), el('th', null, 'retry wait'),
          el('th', null, 'dead'), el('th', null, 'succeeded'),
          el('th', null, 'cancelled'),
          el('th', null, 'succeeded/min'), el('th', null, 'dead/min'),
          el('th', null, 'oldest waiting'))),
        body),
      el('h2', null, 'Last hour, per minute'), charts);
    return { frame: frame, refresh: function (first) {
      var jobs = [WQ.get('/v1/stats').then(function (s) {
        fill(err, s.broker_error ? 'broker: ' + s.broker_error : '');
        fill(body, (s.queues || []).map(function (q) {
          var b = q.broker || {};
          var waiting = b.ready !== null && b.ready !== undefined ? b.ready : b.lag;
          return el('tr', { 'data-queue': q.queue },
            el('th', null, queueLink(q.queue)),
            td('waiting', text(waiting), 'num'),
            td('queued', text(q.queued), 'num'),
            td('scheduled', text(q.scheduled), 'num'),
            td('running', text(q.running), 'num'),
            td('retry_wait', text(q.retry_wait), 'num'),
            td('dead', el('a', { href: hashOf('dead', undefined, { queue: q.queue }) }, text(q.dead)), 'num'),
            td('succeeded', text(q.succeeded), 'num'),
            td('cancelled', text(q.cancelled), 'num'),
            td('succeeded_1m', text(q.succeeded_1m), 'num'),
            td('dead_1m', text(q.dead_1m), 'num'),
            td('oldest_waiting', WQ.age(q.oldest_waiting_s), 'num'));
        }));
        if (!s.queues || !s.queues.length)
          body.appendChild(el('tr', null, el('td', { colspan: 12 }, 'No queue has tasks yet.')));
      })];
      if (first || ticks % HISTORY_EVERY === 0)
        jobs.push(WQ.get('/v1/stats/history', { minutes: 60 }).then(function (h) {
          fill(charts, (h.series || []).map(function (s) {
            return el('figure', { class: 'chart', 'data-queue': s.queue },
              el('figcaption', null, queueLink(s.queue)),
              WQ.lineChart([
                { name: 'succeeded', cls: 'ok', values: s.succeeded || [] },
                { name: 'failed', cls: 'warn', values: s.failed || [] },
                { name: 'dead', cls: 'bad', values: s.dead || [] }
              ], h.step_s || 60, s.queue + ': tasks per minute'));
          }));
        }));
      return Promise.all(jobs);
    } };
  };

  /* Task rows with the acting buttons of their state (admin only). */
  function taskRow(t, withQueue) {
    var acts = el('td', { class: 'acts' });
    if (isAdmin()) {
      if (CANCELLABLE[t.state])
        acts.appendChild(el('button', { type: 'button', class: 'act act-cancel',
          onclick: function () { cancelTask(t.id); } }, 'Cancel'));
      if (RETRYABLE[t.state])
        acts.appendChild(el('button', { type: 'button', class: 'act act-retry',
          onclick: function () { retryTask(t.id); } }, 'Retry'));
    }
    return el('tr', { 'data-id': t.id, 'data-state': t.state },
      td('id', taskLink(t.id)),
      withQueue ? td('queue', queueLink(t.queue)) : null,
      td('type', text(t.type)),
      td('key', el('code', null, text(t.idempotency_key))),
      td('state', stateTag(t.state)),
      td('priority', text(t.priority)),
      td('attempt', t.attempt + '/' + t.max_attempts, 'num'),
      td('created_at', WQ.when(t.created_at)),
      td('finished_at', WQ.when(t.finished_at)),
      td('last_error', el('span', { class: 'error' }, text(t.last_error))),
      acts);
  }

  function cancelTask(id) {
    confirmThen('Cancel task ' + id + '? A waiting task will not run; a running one is asked to stop.',
      'Cancel task', function () {
        act(WQ.post('/v1/tasks/' + encodeURIComponent(id) + ':cancel'), function (r) {
          return r.cancelled ? 'Task ' + r.id + ' cancelled.'
            : 'Task ' + r.id + ' not cancelled (' + r.state + '): ' + text(r.reason);
        });
      });
  }

  function retryTask(id) {
    confirmThen('Retry task ' + id + '? It runs again with a fresh attempt budget.',
      'Retry task', function () {
        act(WQ.post('/v1/tasks/' + encodeURIComponent(id) + ':retry'), function (r) {
          return r.retried ? 'Task ' + r.id + ' queued for a retry.'
            : 'Task ' + r.id + ' not retried (' + r.state + '): ' + text(r.reason);
        });
      });
  }

  /* Keyset pages: the cursors of the pages before this one. */
  function pager(onMove) {
    var stack = [], cur = null, next = null;
    var prevB = el('button', { type: 'button', id: 'page-prev', onclick: function () {
      cur = stack.pop() || null; onMove(); } }, '\u2190 Newer');
    var nextB = el('button', { type: 'button', id: 'page-next', onclick: function () {
      stack.push(cur); cur = next; onMove(); } }, 'Older \u2192');
    var firstB = el('button', { type: 'button', id: 'page-first', onclick: function () {
      stack = []; cur = null; onMove(); } }, 'Newest');
    var info = el('span', { class: 'muted' });
    return {
      node: el('div', { class: 'pager' }, firstB, ' ', prevB, ' ', nextB, ' ', info),
      cursor: function () { return cur; },
      update: function (nextCursor, n) {
        next = nextCursor || null;
        prevB.disabled = stack.length === 0;
        firstB.disabled = stack.length === 0;
        nextB.disabled = !next;
        fill(info, 'page ' + (stack.length + 1) + ', ' + n + ' tasks');
      }
    };
  }

  PAGES.queue = function (r) {
    var q = r.arg || '', body = el('tbody');
    var filters = filterForm([
      { name: 'state', label: 'State', options: STATES },
      { name: 'type', label: 'Type' },
      { name: 'key_prefix', label: 'Key starts with' }
    ], r.query, function (v) { WQ.go(hashOf('queue', q, v)); });
    var pg = pager(function () { refresh(false); });
    var frame = el('section', null,
      el('h1', null, 'Queue ', el('span', { id: 'queue-name' }, q)),
      el('p', null, el('a', { href: hashOf('dead', undefined, { queue: q }) }, 'Dead letters of this queue')),
      filters,
      el('table', { id: 'tasks' }, el('thead', null, el('tr', null,
        el('th', null, 'id'), el('th', null, 'type'), el('th', null, 'key'),
        el('th', null, 'state'), el('th', null, 'priority'), el('th', null, 'attempt'),
        el('th', null, 'created'), el('th', null, 'finished'), el('th', null, 'last error'),
        el('th', null, ''))), body),
      pg.node);
    return { frame: frame, refresh: function () {
      return WQ.get('/v1/tasks', { queue: q, state: r.query.state, type: r.query.type,
        key_prefix: r.query.key_prefix, limit: PAGE, cursor: pg.cursor() }).then(function (a) {
        fill(body, (a.tasks || []).map(function (t) { return taskRow(t, false); }));
        if (!a.tasks || !a.tasks.length)
          body.appendChild(el('tr', null, el('td', { colspan: 9 }, 'No tasks match.')));
        pg.update(a.next_cursor, (a.tasks || []).length);
      });
    } };
  };

  /* Bytes of a task as the API gives them: text, or base64 for bytes that
   * are not UTF-8; shown in a <pre> as text either way. */
  function bytesBlock(t, name) {
    var id = name === 'payload' ? 'payload' : 'result';
    if (t[name] !== null && t[name] !== undefined)
      return el('pre', { id: id, class: 'data' }, typeof t[name] === 'string'
        ? t[name] : JSON.stringify(t[name], null, 2));
    if (t[name + '_base64'])
      return el('pre', { id: id, class: 'data' }, '(base64) ' + t[name + '_base64']);
    return el('p', { id: id, class: 'muted' }, 'none');
  }

  PAGES.task = function (r) {
    var id = r.arg || '';
    var head = el('div', { class: 'task-head' });
    var fields = el('table', { id: 'task-fields', class: 'fields' });
    var payload = el('div'), result = el('div'), headers = el('div');
    var tl = el('div', { id: 'timeline' }), attempts = el('tbody');
    var frame = el('section', null,
      el('h1', null, 'Task ', el('span', { class: 'id' }, id)), head,
      fields,
      el('h2', null, 'Payload'), payload,
      el('h2', null, 'Result'), result,
      el('h2', null, 'Headers'), headers,
      el('h2', null, 'Attempts'), tl,
      el('table', { id: 'attempts' }, el('thead', null, el('tr', null,
        el('th', null, '#'), el('th', null, 'outcome'), el('th', null, 'started'),
        el('th', null, 'finished'), el('th', null, 'ms'), el('th', null, 'worker'),
        el('th', null, 'error'))), attempts));
    return { frame: frame, refresh: function () {
      return WQ.get('/v1/tasks/' + encodeURIComponent(id)).then(function (t) {
        var acts = [];
        if (isAdmin() && CANCELLABLE[t.state])
          acts.push(el('button', { type: 'button', id: 'act-cancel', class: 'act act-cancel',
            onclick: function () { cancelTask(t.id); } }, 'Cancel'));
        if (isAdmin() && RETRYABLE[t.state])
          acts.push(el('button', { type: 'button', id: 'act-retry', class: 'act act-retry',
            onclick: function () { retryTask(t.id); } }, 'Retry'));
        fill(head, stateTag(t.state), ' ', acts);
        var rows = [['queue', queueLink(t.queue)], ['type', text(t.type)],
          ['idempotency_key', el('code', null, text(t.idempotency_key))],
          ['state', text(t.state)], ['priority', text(t.priority)],
          ['attempt', t.attempt + ' of ' + t.max_attempts],
          ['run_at', WQ.when(t.run_at)], ['created_at', WQ.when(t.created_at)],
          ['updated_at', WQ.when(t.updated_at)], ['started_at', WQ.when(t.started_at)],
          ['finished_at', WQ.when(t.finished_at)],
          ['lease_expires_at', WQ.when(t.lease_expires_at)],
          ['worker', text(t.worker)], ['payload_bytes', text(t.payload_bytes)],
          ['progress', t.progress
            ? el('span', { id: 'progress' }, el('progress', { max: '100',
                value: String(t.progress.percent) }), ' ' + t.progress.percent + '%'
                + (t.progress.message ? ' ' + t.progress.message : '') + ', ',
                WQ.when(t.progress.at))
            : el('span', { id: 'progress' }, '\u2014')],
          ['last_error', el('span', { class: 'error', id: 'last-error' }, text(t.last_error))]];
        if (t.claimed === false)
          rows.push(['claimed', 'not yet (on the broker)']);
        fill(fields, el('tbody', null, rows.map(function (kv) {
          return el('tr', { 'data-k': kv[0] }, el('th', null, kv[0]), el('td', null, kv[1]));
        })));
        fill(payload, bytesBlock(t, 'payload'));
        fill(result, bytesBlock(t, 'result'));
        var hk = Object.keys(t.headers || {});
        fill(headers, hk.length ? el('table', { id: 'headers', class: 'fields' },
          el('tbody', null, hk.map(function (k) {
            return el('tr', null, el('th', null, k), el('td', null, text(t.headers[k])));
          }))) : el('p', { class: 'muted' }, 'none'));
        var at = t.attempts || [];
        fill(tl, at.length ? WQ.timeline(at) : el('p', { class: 'muted' }, 'No attempt yet.'));
        fill(attempts, at.map(function (a) {
          return el('tr', { 'data-attempt': a.attempt },
            td('attempt', text(a.attempt), 'num'), td('outcome', stateTag(a.outcome || 'running')),
            td('started_at', WQ.when(a.started_at)), td('finished_at', WQ.when(a.finished_at)),
            td('duration_ms', text(a.duration_ms), 'num'), td('worker', text(a.worker)),
            td('error', el('span', { class: 'error' }, text(a.error))));
        }));
      }, function (e) {
        if (e.status === 404) {
          fill(head, el('p', { class: 'bad' }, 'No such task.'));
          return;
        }
        throw e;
      });
    } };
  };

  PAGES.dead = function (r) {
    var body = el('tbody'), picked = {}, undecodable = el('tbody');
    var filters = filterForm([
      { name: 'queue', label: 'Queue' },
      { name: 'type', label: 'Type' },
      { name: 'error', label: 'Error contains' },
      { name: 'age', label: 'Died', options: [['', 'any time'],
        ['newer:3600000', 'in the last hour'], ['newer:86400000', 'in the last day'],
        ['older:3600000', 'over an hour ago'], ['older:86400000', 'over a day ago']] }
    ], r.query, function (v) { WQ.go(hashOf('dead', undefined, v)); });
    /* "older:MS" or "newer:MS" of the age filter */
    var age = /^(older|newer):(\d+)$/.exec(r.query.age || '');
    var older = age && age[1] === 'older' ? Number(age[2]) : undefined;
    var newer = age && age[1] === 'newer' ? Number(age[2]) : undefined;
    var pg = pager(function () { refresh(false); });
    var filterBody = function () {
      return { queue: r.query.queue || undefined, type: r.query.type || undefined,
        error: r.query.error || undefined, older_than_ms: older, newer_than_ms: newer,
        limit: 10000 };
    };
    var bulk = function (verb) {
      var ids = Object.keys(picked);
      var what = ids.length
        ? (verb === 'replay' ? 'Replay ' : 'Purge ') + ids.length + ' selected dead task(s)?'
        : (verb === 'replay' ? 'Replay' : 'Purge') + ' every dead task matching the filters' +
          ' (up to 10000)?';
      if (verb === 'purge')
        what += ' Purged tasks are deleted for good.';
      confirmThen(what, verb === 'replay' ? 'Replay' : 'Purge', function () {
        act(WQ.post('/v1/dead:' + verb, ids.length ? { ids: ids } : filterBody()), function (x) {
          picked = {};
          return verb === 'replay' ? 'Replayed ' + x.replayed + ' task(s).'
            : 'Purged ' + x.purged + ' task(s).';
        });
      });
    };
    var buttons = isAdmin() ? el('div', { class: 'bulk' },
      el('button', { type: 'button', id: 'dead-replay', class: 'act',
        onclick: function () { bulk('replay'); } }, 'Replay\u2026'), ' ',
      el('button', { type: 'button', id: 'dead-purge', class: 'act danger',
        onclick: function () { bulk('purge'); } }, 'Purge\u2026'),
      el('span', { class: 'muted' }, ' the selected tasks, or with none selected every task the filters match'))
      : null;
    var frame = el('section', null, el('h1', null, 'Dead letters'), filters, buttons,
      el('table', { id: 'dead' }, el('thead', null, el('tr', null,
        el('th', null, ''), el('th', null, 'id'), el('th', null, 'queue'),
        el('th', null, 'type'), el('th', null, 'key'), el('th', null, 'state'),
        el('th', null, 'priority'), el('th', null, 'attempt'), el('th', null, 'created'),
        el('th', null, 'finished'),
        el('th', null, 'last error'), el('th', null, ''))), body),
      pg.node,
      el('h2', null, 'Undecodable messages'),
      el('p', { class: 'muted' }, 'Broker messages no task could be read from, kept whole; ' +
        'they have no type and no attempts, and replay and purge leave them alone.'),
      el('table', { id: 'undecodable' }, el('thead', null, el('tr', null,
        el('th', null, 'number'), el('th', null, 'queue'), el('th', null, 'transport'),
        el('th', null, 'received'), el('th', null, 'bytes'), el('th', null, 'error'),
        el('th', null, ''))), undecodable));
    var download = function (m) {
      WQ.getBytes('/v1/undecodable/' + encodeURIComponent(m.id) + '/raw').then(function (b) {
        WQ.saveBlob(b, 'workq-undecodable-' + m.id + '.bin');
      }, function (e) {
        notice('download refused (' + e.status + '): ' + e.message, true);
      });
    };
    var refreshUndecodable = function () {
      return WQ.get('/v1/undecodable', { queue: r.query.queue, error: r.query.error,
        older_than_ms: older, newer_than_ms: newer, limit: PAGE }).then(function (a) {
        var ms = r.query.type ? [] : a.undecodable || [];
        fill(undecodable, ms.map(function (m) {
          return el('tr', { 'data-id': m.id },
            td('id', text(m.id), 'num'), td('queue', text(m.queue)),
            td('transport', text(m.transport)), td('received_at', WQ.when(m.received_at)),
            td('bytes', text(m.bytes), 'num'),
            td('error', el('span', { class: 'error' }, text(m.error))),
            td('raw', el('button', { type: 'button', class: 'download',
              onclick: function () { download(m); } }, 'Download')));
        }));
        if (!ms.length)
          undecodable.appendChild(el('tr', null, el('td', { colspan: 7 },
            r.query.type ? 'Undecodable messages have no type.' : 'None.')));
      });
    };
    return { frame: frame, refresh: function () {
      refreshUndecodable().catch(function (e) {
        notice('undecodable messages: ' + e.message, true);
      });
      return WQ.get('/v1/dead', { queue: r.query.queue, type: r.query.type,
        error: r.query.error, older_than_ms: older, newer_than_ms: newer,
        limit: PAGE, cursor: pg.cursor() }).then(function (a) {
        var tasks = a.tasks || [];
        fill(body, tasks.map(function (t) {
          var row = taskRow(t, true);
          var cell = el('td');
          if (isAdmin()) {
            var box = el('input', { type: 'checkbox', class: 'pick act',
              'aria-label': 'select ' + t.id });
            box.checked = !!picked[t.id];
            box.addEventListener('change', function () {
              if (box.checked) picked[t.id] = 1; else delete picked[t.id];
            });
            cell.appendChild(box);
          }
          row.insertBefore(cell, row.firstChild);
          return row;
        }));
        if (!tasks.length)
          body.appendChild(el('tr', null, el('td', { colspan: 11 }, 'No dead tasks match.')));
        pg.update(a.next_cursor, tasks.length);
      });
    } };
  };

  PAGES.workers = function (r) {
    var body = el('tbody');
    var all = r.query.all === 'true';
    var frame = el('section', null, el('h1', null, 'Workers'),
      el('p', null, all ? el('a', { href: '#/workers' }, 'Only live workers')
        : el('a', { href: '#/workers?all=true' }, 'Also stopped workers')),
      el('table', { id: 'workers' }, el('thead', null, el('tr', null,
        el('th', null, 'id'), el('th', null, 'host'), el('th', null, 'pid'),
        el('th', null, 'queues'), el('th', null, 'in flight'), el('th', null, 'status'),
        el('th', null, 'heartbeat'), el('th', null, 'started'), el('th', null, 'version'))), body));
    return { frame: frame, refresh: function () {
      return WQ.get('/v1/workers', { all: all ? 'true' : 'false' }).then(function (a) {
        var ws = a.workers || [];
        fill(body, ws.map(function (w) {
          return el('tr', { 'data-id': w.id, 'data-status': w.status },
            td('id', text(w.id)), td('hostname', text(w.hostname)), td('pid', text(w.pid), 'num'),
            td('queues', text((w.queues || []).join(', '))), td('in_flight', text(w.in_flight), 'num'),
            td('status', stateTag(w.status)),
            td('heartbeat', WQ.age(w.heartbeat_age_s) + ' ago'),
            td('started_at', WQ.when(w.started_at)), td('version', text(w.version)));
        }));
        if (!ws.length)
          body.appendChild(el('tr', null, el('td', { colspan: 9 }, 'No workers.')));
      });
    } };
  };

  PAGES.periodic = function () {
    var body = el('tbody');
    var frame = el('section', null, el('h1', null, 'Periodic tasks'),
      el('table', { id: 'periodic' }, el('thead', null, el('tr', null,
        el('th', null, 'name'), el('th', null, 'schedule'), el('th', null, 'queue'),
        el('th', null, 'type'), el('th', null, 'last run'), el('th', null, 'next run'))), body));
    return { frame: frame, refresh: function () {
      return WQ.get('/v1/periodic').then(function (a) {
        var ps = a.periodic || [];
        fill(body, ps.map(function (p) {
          return el('tr', { 'data-name': p.name },
            td('name', text(p.name)), td('schedule', el('code', null, text(p.schedule))),
            td('queue', queueLink(p.queue)), td('type', text(p.type)),
            td('last_run_at', WQ.when(p.last_run_at)), td('next_run_at', WQ.when(p.next_run_at)));
        }));
        if (!ps.length)
          body.appendChild(el('tr', null, el('td', { colspan: 6 }, 'No periodic tasks are configured.')));
      });
    } };
  };

  /* ---- start ----------------------------------------------------------- */

  function shell() {
    var nav = el('nav', { id: 'nav' },
      el('span', { class: 'brand' }, 'workq'),
      [['overview', 'Overview'], ['dead', 'Dead letters'], ['workers', 'Workers'],
        ['periodic', 'Periodic']].map(function (p) {
        return el('a', { href: '#/' + p[0], 'data-page': p[0] }, p[1]);
      }),
      el('span', { id: 'who' }));
    fill(document.getElementById('app'),
      el('header', null, nav),
      el('div', { id: 'notice', class: 'notice empty', role: 'status' }),
      el('div', { id: 'confirm' }),
      el('main', { id: 'main' }),
      el('footer', null, el('span', { id: 'status', class: 'muted' })));
  }

  function start() {
    shell();
    window.addEventListener('hashchange', route);
    setInterval(function () {
      ticks++;
      if (!document.hidden && WQ.token())
        refresh(false);
    }, POLL_MS);
    if (!WQ.token()) {
      route();
      return;
    }
    WQ.get('/v1/whoami').then(function (r) {
      WQ.scopes = r.scopes || [];
      route();
    }, function () { route(); });
  }

  document.addEventListener('DOMContentLoaded', start);
})();
