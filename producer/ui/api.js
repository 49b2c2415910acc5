/*
 * api.js - the dashboard's only way to the server: fetch() of /v1/ with
 * "Authorization: Bearer TOKEN".  The token lives in sessionStorage (this
 * tab, until it closes); there are no cookies, so a page of another site
 * cannot make the browser act with the operator's rights.  A 401 sends
 * the operator back to the login page.
 */
'use strict';

(function () {
  var WQ = window.WQ;
  var KEY = 'workq.token';

  function token() { return sessionStorage.getItem(KEY); }
  function setToken(t) { sessionStorage.setItem(KEY, t); }
  function logout() {
    sessionStorage.removeItem(KEY);
    WQ.scopes = [];
  }

  /* An error with the API's {"error","detail"} and the status. */
  function ApiError(status, body) {
    this.status = status;
    this.error = body && body.error || 'http_' + status;
    this.message = (body && body.detail) || this.error;
  }

  /*
   * call('GET', '/v1/stats', {queue: 'q'}) or call('POST', path, null,
   * body): resolves to the parsed JSON answer, rejects with an ApiError.
   * Empty query values are left out.
   */
  function call(method, path, query, body, tok) {
    var url = path, q = [];
    Object.keys(query || {}).forEach(function (k) {
      var v = query[k];
      if (v !== '' && v !== null && v !== undefined)
        q.push(encodeURIComponent(k) + '=' + encodeURIComponent(v));
    });
    if (q.length)
      url += '?' + q.join('&');
    var headers = { 'Authorization': 'Bearer ' + (tok || token() || '') };
    var opts = { method: method, headers: headers, credentials: 'omit',
      cache: 'no-store', redirect: 'error' };
    if (body !== undefined && body !== null) {
      headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (r) {
      return r.text().then(function (t) {
        var j = null;
        try { j = t ? JSON.parse(t) : null; } catch (e) { j = null; }
        if (!r.ok) {
          if (r.status === 401 && !tok) {
            logout();
            WQ.go('#/login');
          }
          throw new ApiError(r.status, j);
        }
        return j;
      });
    });
  }

  /* GET of a route that answers bytes (an undecodable message's raw
   * bytes): resolves to a Blob, rejects with an ApiError. */
  function getBytes(path) {
    return fetch(path, { method: 'GET', credentials: 'omit', cache: 'no-store',
      redirect: 'error', headers: { 'Authorization': 'Bearer ' + (token() || '') }
    }).then(function (r) {
      if (r.ok)
        return r.blob();
      return r.text().then(function (t) {
        var j = null;
        try { j = t ? JSON.parse(t) : null; } catch (e) { j = null; }
        if (r.status === 401) {
          logout();
          WQ.go('#/login');
        }
        throw new ApiError(r.status, j);
      });
    });
  }

  WQ.getBytes = getBytes;
  WQ.token = token;
  WQ.setToken = setToken;
  WQ.logout = logout;
  WQ.call = call;
  WQ.get = function (path, query) { return call('GET', path, query); };
  WQ.post = function (path, body) { return call('POST', path, null, body || {}); };
})();
