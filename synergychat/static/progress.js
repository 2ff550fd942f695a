// How far the crawler has read the book catalogue, from the api's GET /crawl/progress: one
// line of text and a <progress> bar named by it. Asked every 30 s while the page is visible,
// at once when it becomes visible again. Not a live region: a screen reader reads it where it
// is, when the reader gets there, instead of at every poll.

const POLL_MS = 30000;
const count = new Intl.NumberFormat();
const tenths = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });

// What the crawler is doing, when the numbers alone don't say it.
const STATE_TEXT = {
  starting: 'starting',
  recounting: 'counting books again for new keywords',
  retrying: 'the book catalogue is not answering, trying again',
  waiting: 'this pass is done, looking for new books within the hour',
  paused: 'paused, its database is not answering',
  failed: 'stopped on an error',
  stopped: 'stopped',
};

export function timeLeft(seconds) {
  if (seconds < 60) return 'less than a minute left';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `about ${minutes} min left`;
  const hours = Math.round(seconds / 3600);
  if (hours < 48) return `about ${hours} h left`;
  return `about ${Math.round(seconds / 86400)} days left`;
}

// "Crawler: 1,234 of 75,000 books (1.6%) · about 3 h left"
export function describeProgress(progress) {
  const { books_done: done, books_total: total, eta_seconds: eta, state } = progress;
  const parts = [
    total === null
      ? `Crawler: ${count.format(done)} books read so far`
      : `Crawler: ${count.format(done)} of ${count.format(total)} books (${tenths.format(progress.percent)}%)`,
  ];
  if (eta !== null) parts.push(timeLeft(eta));
  if (STATE_TEXT[state]) parts.push(STATE_TEXT[state]);
  return parts.join(' · ');
}

function isProgress(body) {
  return (
    body !== null &&
    typeof body === 'object' &&
    typeof body.state === 'string' &&
    Number.isSafeInteger(body.books_done) &&
    (body.books_total === null || Number.isSafeInteger(body.books_total)) &&
    (body.percent === null || typeof body.percent === 'number') &&
    (body.eta_seconds === null || typeof body.eta_seconds === 'number')
  );
}

// What to say when there are no numbers: the api's reason when it gives one (it never names
// an address), else what we know.
async function unavailableText(response) {
  if (response.status === 404) return 'Crawler progress: not available from this chat server';
  try {
    const body = await response.json();
    if (body && typeof body.error === 'string' && body.error) return `Crawler: unavailable (${body.error})`;
  } catch {
    // not JSON: a proxy's error page
  }
  return 'Crawler: unavailable right now';
}

export class CrawlProgress {
  // `elements`: {panel, text, bar}.
  constructor(elements) {
    this.ui = elements;
    this.url = null;
    this.timer = 0;
    this.asking = false;
    this.stopped = false;
    this.onVisibility = this.onVisibility.bind(this);
  }

  // `url`: the api's /crawl/progress.
  start(url) {
    this.url = url;
    this.ui.panel.hidden = false;
    document.addEventListener('visibilitychange', this.onVisibility);
    this.onVisibility();
  }

  // No more asking (the api is the original one, which has no such endpoint): say why.
  stop(text) {
    this.stopped = true;
    document.removeEventListener('visibilitychange', this.onVisibility);
    window.clearInterval(this.timer);
    this.ui.panel.hidden = false;
    this.showText(text);
  }

  onVisibility() {
    window.clearInterval(this.timer);
    this.timer = 0;
    if (this.stopped || document.visibilityState === 'hidden') return;
    this.refresh();
    this.timer = window.setInterval(() => this.refresh(), POLL_MS);
  }

  async refresh() {
    if (this.asking) return;
    this.asking = true;
    try {
      let response;
      try {
        response = await fetch(this.url, { cache: 'no-store' });
      } catch {
        this.showText('Crawler: unavailable (the chat server cannot be reached)');
        return;
      }
      if (this.stopped) return;
      if (!response.ok) {
        this.showText(await unavailableText(response));
        return;
      }
      let body = null;
      try {
        body = await response.json();
      } catch {
        // handled below
      }
      if (!isProgress(body)) {
        this.showText('Crawler progress: not available from this chat server');
        return;
      }
      this.show(body);
    } finally {
      this.asking = false;
    }
  }

  show(progress) {
    this.showText(describeProgress(progress), progress.percent);
  }

  // `percent`: the bar's value, or null to hide the bar (nothing known to draw). The text is
  // written only when it changes: an unchanged poll moves nothing for assistive technology.
  showText(text, percent = null) {
    const { text: label, bar } = this.ui;
    if (label.textContent !== text) label.textContent = text;
    if (percent === null) {
      bar.hidden = true;
      return;
    }
    bar.value = percent;
    bar.hidden = false;
  }
}
