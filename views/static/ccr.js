/* Customer Care Registry: progressive enhancement only; every page works without it. */
(function () {
  'use strict';

  var each = function (list, fn) { Array.prototype.forEach.call(list, fn); };

  /* <form data-confirm="text">, or a submit button's own data-confirm (one
     form shared by several buttons): ask before submitting (capture phase:
     runs before the form's own listeners). */
  document.addEventListener('submit', function (e) {
    var f = e.target;
    var b = e.submitter;
    var text = (b && b.getAttribute && b.getAttribute('data-confirm')) ||
      (f && f.getAttribute && f.getAttribute('data-confirm'));
    if (text && !window.confirm(text)) e.preventDefault();
  }, true);

  /* <textarea data-draft-key="k">: keep the draft in sessionStorage. */
  var store = null;
  try { store = window.sessionStorage; store.getItem('ccr'); } catch (err) { store = null; }
  if (store) {
    each(document.querySelectorAll('textarea[data-draft-key]'), function (ta) {
      var key = 'ccr-draft:' + ta.getAttribute('data-draft-key');
      var keep = function () {
        try {
          if (ta.value.trim()) store.setItem(key, ta.value); else store.removeItem(key);
        } catch (err) { /* quota or privacy mode: drafts are best effort */ }
      };
      try {
        var saved = store.getItem(key);
        if (saved && !ta.value) ta.value = saved;
      } catch (err) { /* ignore */ }
      ta.addEventListener('input', keep);
      if (ta.form) {
        /* a declined confirm (handled earlier, in the capture phase) keeps the draft */
        ta.form.addEventListener('submit', function (e) {
          if (!e.defaultPrevented) { try { store.removeItem(key); } catch (err) { /* ignore */ } }
        });
      }
    });
  }

  /* <form data-insert-into="ID"> around a <select> of saved replies (each
     <option data-body>, its text filled in by the server): insert the chosen
     text into textarea #ID at the cursor instead of reloading the page
     with ?reply=; keyboard and screen readers use the same select and button. */
  each(document.querySelectorAll('form[data-insert-into]'), function (f) {
    f.addEventListener('submit', function (e) {
      var ta = document.getElementById(f.getAttribute('data-insert-into'));
      var sel = f.querySelector('select');
      var opt = sel && sel.options[sel.selectedIndex];
      if (!ta || !opt || !opt.value) return;   /* no choice: the browser's own check */
      e.preventDefault();
      var text = opt.getAttribute('data-body') || '';
      var start = ta.selectionStart, end = ta.selectionEnd, v = ta.value;
      if (typeof start !== 'number') { start = end = v.length; }
      ta.value = v.slice(0, start) + text + v.slice(end);
      ta.focus();
      var at = start + text.length;
      try { ta.setSelectionRange(at, at); } catch (err) { /* ignore */ }
      ta.dispatchEvent(new Event('input', { bubbles: true }));
    });
  });

  /* <input type=file data-max-files data-max-bytes> followed by <ul class="file-list">:
     list the chosen files with their sizes before sending, and say which
     ones the server will refuse (the server checks again: 422 / 413). */
  var human = function (n) {
    if (n < 1024) return n + (n === 1 ? ' byte' : ' bytes');
    if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB';
    return (n / 1048576).toFixed(1) + ' MiB';
  };
  each(document.querySelectorAll('input[type=file][data-max-files]'), function (input) {
    var list = input.parentNode.querySelector('.file-list');
    if (!list) return;
    var maxFiles = parseInt(input.getAttribute('data-max-files'), 10) || 5;
    var maxBytes = parseInt(input.getAttribute('data-max-bytes'), 10) || 0;
    var show = function () {
      while (list.firstChild) list.removeChild(list.firstChild);
      var files = input.files || [];
      var line = function (text, cls) {
        var li = document.createElement('li');
        if (cls) li.className = cls;
        li.appendChild(document.createTextNode(text));
        list.appendChild(li);
      };
      var total = 0;
      each(files, function (f) {
        total += f.size;
        var big = maxBytes && f.size > maxBytes;
        line(f.name + ' \u2014 ' + human(f.size) + (big ? ' (too large)' : ''), big ? 'file-warn' : '');
      });
      if (files.length > maxFiles) line('At most ' + maxFiles + ' attachments', 'file-warn');
      if (total > 25 * 1048576) line('Attachments are too large', 'file-warn');
      list.hidden = files.length === 0;
    };
    input.addEventListener('change', show);
    show();
  });

  /* <ol id="thread" data-poll data-after>: fetch newer timeline entries (messages, notes, events). */
  var thread = document.getElementById('thread');
  var poll = thread && thread.getAttribute('data-poll');
  if (!poll || !window.fetch || !('content' in document.createElement('template'))) return;

  var BASE = 5000, HIDDEN = 30000, MAX = 60000;
  var timer = 0, busy = false, stopped = false, errDelay = 0;

  var schedule = function () {
    clearTimeout(timer);
    if (stopped) return;
    var ms = errDelay || BASE;
    if (document.hidden && ms < HIDDEN) ms = HIDDEN;
    timer = setTimeout(tick, ms);
  };
  var stop = function () { stopped = true; clearTimeout(timer); };
  var append = function (html) {
    var tpl = document.createElement('template');
    tpl.innerHTML = html;
    var last = null;
    each(tpl.content.children, function (el) {
      if (el.tagName !== 'LI') return;
      last = el;
      if (!el.id || !document.getElementById(el.id)) thread.appendChild(document.importNode(el, true));
    });
    if (!last) return;
    var seq = last.getAttribute('data-seq');
    if (seq) thread.setAttribute('data-after', seq);
    var none = document.getElementById('no-messages');
    if (none) none.parentNode.removeChild(none);
  };
  /* the session ended (idle or absolute limit, logout elsewhere): say so in
     the flash area at the top of the page; the poll itself never keeps a
     session alive */
  var ended = function () {
    stop();
    var main = document.getElementById('main') || document.body;
    var box = document.createElement('div');
    box.className = 'flash flash-error';
    box.setAttribute('role', 'status');
    box.id = 'session-ended';
    var p = document.createElement('p');
    p.appendChild(document.createTextNode('Your session has ended. Sign in again.'));
    box.appendChild(p);
    var old = main.querySelector('.flash');
    if (old) old.parentNode.replaceChild(box, old); else main.insertBefore(box, main.firstChild);
  };
  var failed = function () {
    errDelay = Math.min((errDelay || BASE) * 2, MAX);
  };

  function tick() {
    timer = 0;
    if (stopped || busy) return;
    busy = true;
    var after = thread.getAttribute('data-after') || '0';
    window.fetch(poll + '?after=' + encodeURIComponent(after), {
      credentials: 'same-origin', headers: { 'Accept': 'text/html' }, cache: 'no-store'
    }).then(function (r) {
      /* a redirect (to /login) or 401: the session has ended */
      if (r.status === 401 || r.redirected) { ended(); return null; }
      /* the ticket is gone or forbidden: stop for good */
      if (r.status === 403 || r.status === 404) { stop(); return null; }
      if (!r.ok) { failed(); return null; }
      return r.text().then(function (text) {
        errDelay = 0;
        if (text.trim()) append(text);
      });
    }).catch(failed).then(function () {
      busy = false;
      schedule();
    });
  }

  document.addEventListener('visibilitychange', function () {
    if (stopped) return;
    if (document.hidden) {
      if (!busy) schedule();
    } else if (!busy) {
      clearTimeout(timer);
      tick();
    }
  });
  schedule();
}());
