// The chat api as the page sees it: where it is (API_URL from the page's configuration),
// and its answers, which must be lists of messages or an error the user can read.

export class ConfigError extends Error {}

export function readApiUrl() {
  const node = document.getElementById('synergychat-config');
  let config = null;
  try {
    config = JSON.parse(node ? node.textContent : '');
  } catch {
    // The placeholder was not replaced: the file was opened directly or served by something else.
  }
  if (!config || typeof config !== 'object') {
    throw new ConfigError(
      'This page is missing its configuration (it was not served by the SynergyChat web role), ' +
        'so it cannot reach the chat API.',
    );
  }
  const apiUrl = typeof config.apiUrl === 'string' ? config.apiUrl.trim() : '';
  if (!apiUrl) {
    throw new ConfigError(
      'The chat API is not configured: set API_URL on the web role ' +
        '(for example /api or http://localhost:8081), then reload this page.',
    );
  }
  return apiUrl;
}

export function resolveApi(apiUrl) {
  // One trailing slash whatever API_URL ends with, so "/api" and "/api/" mean the same.
  let base;
  try {
    base = new URL(apiUrl.replace(/\/+$/, '') + '/', window.location.href);
  } catch {
    throw new ConfigError(`API_URL ${JSON.stringify(apiUrl)} is not a valid URL.`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new ConfigError(`API_URL ${JSON.stringify(apiUrl)} must be an http:// or https:// URL or a path.`);
  }
  return {
    messages: new URL('messages', base),
    stream: new URL('messages/stream', base),
    progress: new URL('crawl/progress', base),
  };
}

// Said along with network failures, because it is the usual cause nobody thinks of.
function mixedContentHint(url) {
  if (window.location.protocol === 'https:' && new URL(url).protocol === 'http:') {
    return ' This page is served over https:// but API_URL is http://, which browsers block.';
  }
  return '';
}

export class ApiError extends Error {}

export async function requestJson(url, options = {}) {
  let response;
  try {
    response = await fetch(url, { cache: 'no-store', ...options });
  } catch {
    throw new ApiError('Could not reach the chat server.' + mixedContentHint(url));
  }
  let body;
  try {
    const text = await response.text();
    body = text ? JSON.parse(text) : null;
  } catch {
    body = undefined; // not JSON: a proxy's error page, or API_URL pointing at the wrong thing
  }
  if (!response.ok) {
    if (body && typeof body.error === 'string' && body.error) throw new ApiError(body.error);
    throw new ApiError(`The chat server answered ${response.status} ${response.statusText}`.trim() + '.');
  }
  if (!Array.isArray(body)) {
    throw new ApiError('The chat server did not answer with a list of messages. Does API_URL point at the api?');
  }
  return body;
}

export function withParams(base, params) {
  const url = new URL(base);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, String(value));
  return url;
}

// What a stream URL answers when the api has no stream (the original's router, or a proxy
// that forwards /messages only).
const NO_STREAM_STATUSES = [404, 405];

// EventSource does not show why it gave up: ask the stream URL for its status (null when
// unreachable, or when a 404 comes without CORS headers and the browser hides it).
export async function streamStatus(streamUrl) {
  const controller = new AbortController();
  try {
    const response = await fetch(streamUrl, { cache: 'no-store', signal: controller.signal });
    return response.status;
  } catch {
    return null;
  } finally {
    // Only the status was wanted: a stream that does answer is not read.
    controller.abort();
  }
}

export async function streamIsMissing(streamUrl) {
  return NO_STREAM_STATUSES.includes(await streamStatus(streamUrl));
}

export function hasId(message) {
  return message !== null && typeof message === 'object' && Number.isSafeInteger(message.id);
}

export function isMessage(message) {
  return (
    message !== null &&
    typeof message === 'object' &&
    typeof message.AuthorUsername === 'string' &&
    typeof message.Text === 'string'
  );
}
