// SynergyChat's page: loads the latest messages, follows new ones over Server-Sent Events
// (or polls an api without a stream, such as the original Go one), and posts what the user
// writes. The log (message-log.js), the form (composer.js) and the api (api.js) are modules.

import {
  ApiError,
  ConfigError,
  hasId,
  readApiUrl,
  requestJson,
  resolveApi,
  streamIsMissing,
  streamStatus,
  withParams,
} from './api.js';
import { Composer } from './composer.js';
import { CrawlProgress } from './progress.js';
import { MessageLog } from './message-log.js';

const PAGE_SIZE = 100;
// An api without message ids (the original Go one) has no stream: poll it as the original page did.
const LEGACY_POLL_MS = 5000;
// While the stream is not open (api restarting, a proxy buffering the stream so it never
// opens, or no stream at all), fetch the latest page this often so the chat keeps moving.
const FALLBACK_POLL_MS = 5000;
// Without a stream, ask again this often whether one has appeared (a proxy's 404 that was
// passing, a rollout from the original api to ours); the original's history ends the asking.
const STREAM_RECHECK_MS = 60000;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30000;
// Wide enough for the help panel to sit beside the chat: open it there, fold it on phones.
// In em like the stylesheet's breakpoints, so a larger default text size counts as narrower.
const WIDE_SCREEN = '(min-width: 56.25em)';

const byId = (id) => document.getElementById(id);
const ui = {
  status: byId('status'),
  statusText: byId('status-text'),
  banner: byId('banner'),
  bannerText: byId('banner-text'),
  bannerRetry: byId('banner-retry'),
  scroller: byId('scroller'),
  older: byId('load-older'),
  help: byId('help'),
};

const state = {
  api: null, // {messages: URL, stream: URL} once API_URL resolved
  hasOlder: false,
  legacy: false, // the original api: no ids, the whole history in every answer
  noStream: false, // the stream URL answered 404: poll instead
  source: null,
  fallbackTimer: 0,
  recheckTimer: 0,
  retryMs: RETRY_MIN_MS,
  timer: 0,
  fallbackPolling: false,
  loadingOlder: false,
  history: null, // the api's history id, from the stream's hello event
};

// Started once the api has answered, so an original api (no such endpoint) is never asked.
const crawlProgress = {
  started: false,
  view: new CrawlProgress({ panel: byId('crawl'), text: byId('crawl-text'), bar: byId('crawl-bar') }),
};
const ORIGINAL_API_PROGRESS = 'Crawler progress: not available from the original chat server';

function startCrawlProgress() {
  if (crawlProgress.started) return;
  crawlProgress.started = true;
  if (state.legacy) crawlProgress.view.stop(ORIGINAL_API_PROGRESS);
  else crawlProgress.view.start(state.api.progress);
}

const composer = new Composer({ submit: post, onNameChange: () => log.refreshOwnMarks() });
const log = new MessageLog(
  {
    scroller: ui.scroller,
    list: byId('messages'),
    empty: byId('empty'),
    jump: byId('jump'),
    announcer: byId('announcer'),
  },
  () => composer.username,
);

// ---- status, banner -------------------------------------------------------------------

const STATUS_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
  polling: 'Refreshing every 5 s',
  unconfigured: 'Not configured',
};

// The status is a live region: only a change of state is written, so it is said once.
function setStatus(name) {
  if (ui.statusText.textContent === STATUS_TEXT[name] && ui.status.classList.contains(`status-${name}`)) return;
  ui.status.className = `status status-${name}`;
  ui.statusText.textContent = STATUS_TEXT[name];
}

// The text is an alert: written only when it changes, so a failing retry is not said again.
function showBanner(text, retry = '') {
  if (ui.bannerText.textContent !== text) ui.bannerText.textContent = text;
  ui.bannerRetry.textContent = retry;
  ui.banner.hidden = false;
}

function hideBanner() {
  ui.banner.hidden = true;
  ui.bannerText.textContent = '';
  ui.bannerRetry.textContent = '';
}

function nextRetryDelay() {
  const delay = state.retryMs;
  state.retryMs = Math.min(state.retryMs * 2, RETRY_MAX_MS);
  return delay;
}

function schedule(callback, delay) {
  window.clearTimeout(state.timer);
  state.timer = window.setTimeout(callback, delay);
}

function updateOlderButton() {
  ui.older.hidden = state.legacy || !state.hasOlder;
}

// ---- loading, live updates -------------------------------------------------------------

async function loadLatest() {
  try {
    const page = await requestJson(withParams(state.api.messages, { limit: PAGE_SIZE }));
    hideBanner();
    state.retryMs = RETRY_MIN_MS;
    if (page.some((message) => !hasId(message))) {
      startLegacy(page);
      startCrawlProgress();
      return;
    }
    startCrawlProgress();
    log.add(page, 'new', true);
    state.hasOlder = page.length >= PAGE_SIZE;
    updateOlderButton();
    // An empty answer does not tell our api from the original: the stream URL does (404 there).
    openStream();
    state.fallbackTimer = window.setInterval(pollWhileStreamDown, FALLBACK_POLL_MS);
  } catch (error) {
    const delay = nextRetryDelay();
    setStatus('offline');
    showBanner(`Could not load messages: ${error.message}`, `Retrying in ${Math.round(delay / 1000)} s…`);
    schedule(loadLatest, delay);
  }
}

function openStream() {
  if (state.source) state.source.close();
  state.source = null;
  if (state.legacy || state.noStream) return;
  const url = new URL(state.api.stream);
  url.searchParams.set('after', String(log.lastId));
  const source = new EventSource(url);
  state.source = source;
  source.addEventListener('open', () => {
    state.retryMs = RETRY_MIN_MS;
    setStatus('live');
    hideBanner();
  });
  source.addEventListener('message', (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    log.add([message]);
  });
  source.addEventListener('hello', (event) => {
    let history = null;
    try {
      history = JSON.parse(event.data).history;
    } catch {
      return;
    }
    const known = state.history;
    state.history = history;
    // Reconnected to another history (the api restarted on an empty or another database):
    // the ids we hold mean other messages there.
    if (known && history !== known) {
      source.close();
      state.source = null;
      resetHistory();
    }
  });
  source.addEventListener('reset', () => {
    // The api's history was replaced (restarted without a database file, or restored):
    // the messages shown are from another history. Close first, so EventSource does not
    // reconnect with an id the api never issued, then start over from the latest page.
    source.close();
    state.source = null;
    resetHistory();
  });
  source.addEventListener('error', () => {
    if (source !== state.source) return;
    if (source.readyState !== EventSource.CLOSED) {
      // EventSource retries by itself, sending Last-Event-ID; the server replays the gap.
      setStatus('reconnecting');
      return;
    }
    // The browser gave up on an error status, which EventSource does not show: ask for it.
    // 404 means there is no stream (the original api): poll. Anything else: reopen later
    // from the newest message we have.
    source.close();
    state.source = null;
    streamIsMissing(state.api.stream).then((missing) => {
      if (state.legacy || state.source) return;
      if (missing) {
        useNoStream();
        return;
      }
      setStatus('reconnecting');
      schedule(openStream, nextRetryDelay());
    });
  });
}

// No stream at this api: the fallback poll carries the chat (and finds id-less messages,
// the original's, as soon as there are any).
function useNoStream() {
  state.noStream = true;
  window.clearTimeout(state.timer);
  setStatus('polling');
  hideBanner();
  pollWhileStreamDown();
  state.recheckTimer = window.setInterval(recheckStream, STREAM_RECHECK_MS);
}

async function recheckStream() {
  if (state.legacy) {
    window.clearInterval(state.recheckTimer);
    return;
  }
  if ((await streamStatus(state.api.stream)) !== 200 || state.legacy) return;
  window.clearInterval(state.recheckTimer);
  state.noStream = false;
  openStream();
}

async function resetHistory() {
  if (state.legacy) return;
  log.clear();
  try {
    const page = await requestJson(withParams(state.api.messages, { limit: PAGE_SIZE }));
    log.add(page, 'new', true);
    state.hasOlder = page.length >= PAGE_SIZE;
    updateOlderButton();
  } catch {
    // The stream below and the fallback poll bring the messages once the api answers.
  }
  openStream();
}

async function pollWhileStreamDown() {
  const source = state.source;
  if (state.legacy || state.fallbackPolling || (source && source.readyState === EventSource.OPEN)) return;
  state.fallbackPolling = true;
  try {
    const page = await requestJson(withParams(state.api.messages, { limit: PAGE_SIZE }));
    if (state.legacy) return;
    if (page.some((message) => !hasId(message))) startLegacy(page, true);
    else log.add(page);
    if (state.noStream) {
      hideBanner();
      setStatus('polling');
    }
  } catch (error) {
    // With a stream, its status already says the connection is down and its retries bring it
    // back; without one, this poll is the connection.
    if (state.noStream) {
      setStatus('offline');
      showBanner(`Could not refresh messages: ${error.message}`);
    }
  } finally {
    state.fallbackPolling = false;
  }
}

// The original api: messages have no id, and every answer is the whole history.
// `speak`: found after load (an api empty then), so what it holds is news.
function startLegacy(page, speak = false) {
  state.legacy = true;
  if (crawlProgress.started) crawlProgress.view.stop(ORIGINAL_API_PROGRESS);
  if (state.source) state.source.close();
  state.source = null;
  window.clearInterval(state.fallbackTimer);
  // What id-mode showed (nothing, usually) gives way to the original's whole history.
  log.clear();
  updateOlderButton();
  log.showWhole(page, speak);
  hideBanner();
  setStatus('polling');
  schedule(pollLegacy, LEGACY_POLL_MS);
}

async function pollLegacy() {
  try {
    log.showWhole(await requestJson(state.api.messages));
    hideBanner();
    setStatus('polling');
  } catch (error) {
    setStatus('offline');
    showBanner(`Could not refresh messages: ${error.message}`);
  }
  schedule(pollLegacy, LEGACY_POLL_MS);
}

async function loadOlder() {
  const oldest = log.oldestId;
  if (oldest === undefined || state.loadingOlder) return;
  // aria-disabled, not disabled: a disabled button drops the keyboard focus to the page's start.
  state.loadingOlder = true;
  ui.older.setAttribute('aria-disabled', 'true');
  ui.older.textContent = 'Loading…';
  try {
    const page = await requestJson(withParams(state.api.messages, { limit: PAGE_SIZE, before: oldest }));
    const added = log.add(page, 'older', true);
    // An api that ignores `before` answers the same page again: nothing older to get.
    state.hasOlder = added > 0 && page.length >= PAGE_SIZE;
    ui.older.textContent = 'Load older messages';
  } catch (error) {
    ui.older.textContent = 'Could not load older messages. Try again';
    ui.older.title = error.message;
  } finally {
    state.loadingOlder = false;
    ui.older.removeAttribute('aria-disabled');
    const hadFocus = document.activeElement === ui.older;
    updateOlderButton();
    // The whole history is here and the button goes: focus stays in the log, not lost to the page.
    if (hadFocus && ui.older.hidden) ui.scroller.focus();
  }
}


// ---- sending -------------------------------------------------------------------------------

async function post(message) {
  if (!state.api) throw new ApiError('Cannot send: this page has no working API_URL (see the message above).');
  const page = await requestJson(state.api.messages, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(message),
  });
  if (state.legacy) {
    log.showWhole(page, true, true);
  } else if (page.some((item) => !hasId(item))) {
    // Sent to the original api (it was empty when the page loaded, so nothing told it apart).
    startLegacy(page, true);
    log.scrollToBottom();
  } else {
    log.add(page, 'own');
  }
}

// ---- start ---------------------------------------------------------------------------------

function start() {
  if (window.matchMedia(WIDE_SCREEN).matches) ui.help.open = true;
  ui.older.addEventListener('click', loadOlder);
  ui.help.addEventListener('click', (event) => {
    const example = event.target.closest('.example');
    if (example) composer.use(example.textContent);
  });

  try {
    state.api = resolveApi(readApiUrl());
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    setStatus('unconfigured');
    showBanner(error.message);
    return;
  }
  setStatus('connecting');
  loadLatest();
}

start();
