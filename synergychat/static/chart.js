// crawler-bot's /stats answer as a bar chart beside its text. The numbers come from the
// reply itself, read by the grammar bot.py writes it in (STATS_REPLY_PATTERN and
// STATS_REPLY_ENTRY_PATTERN there; tests hold the two files to the same patterns), so the
// stored message stays the original's {AuthorUsername, Text}.
//
// The chart is a list, "love 30", "hate 12", each with a drawn bar: read as text by
// everyone, the bars only drawn (SVG attributes, which the page's CSP allows; no inline style).

// "... found N matches [so far ]in books matching your request. love: 30, hate: 12 (in 5 books)."
export const STATS_REPLY = new RegExp(
  String.raw`found ([0-9]+) matches (?:so far )?in books matching your request\. ((?:[^,]+: [0-9]+)(?:, [^,]+: [0-9]+)*) \(in ([0-9]+) books?\)\.`,
);
// One "keyword: count" of the breakdown; the keyword is everything before the last ": ".
export const STATS_REPLY_ENTRY = /([^,]+): ([0-9]+)(?:, |$)/g;

const SVG = 'http://www.w3.org/2000/svg';
const count = new Intl.NumberFormat();

// {total, books, entries: [{keyword, count}]} from a bot reply, or null when it holds no breakdown.
export function parseStatsReply(text) {
  const match = STATS_REPLY.exec(text);
  if (!match) return null;
  const entries = Array.from(match[2].matchAll(STATS_REPLY_ENTRY), (entry) => ({
    keyword: entry[1],
    count: Number(entry[2]),
  }));
  const total = Number(match[1]);
  // The breakdown adds up to the total, or it is not the bot's breakdown.
  if (!entries.length || entries.reduce((sum, entry) => sum + entry.count, 0) !== total) return null;
  return { total, books: Number(match[3]), entries };
}

export function renderStatsChart(stats) {
  const figure = document.createElement('figure');
  figure.className = 'stats-chart';
  const caption = document.createElement('figcaption');
  const books = `${count.format(stats.books)} book${stats.books === 1 ? '' : 's'}`;
  caption.textContent = `Matches per keyword, in ${books}`;
  const list = document.createElement('ul');
  list.className = 'chart-bars';
  const largest = Math.max(...stats.entries.map((entry) => entry.count));
  for (const entry of stats.entries) {
    const item = document.createElement('li');
    const key = document.createElement('span');
    key.className = 'chart-key';
    key.textContent = entry.keyword;
    const value = document.createElement('span');
    value.className = 'chart-count';
    value.textContent = count.format(entry.count);
    item.append(key, ' ', barFor(entry.count / largest), ' ', value);
    list.append(item);
  }
  figure.append(caption, list);
  return figure;
}

// A bar as long as `share` of the track (a sliver at least, so a small count still shows).
function barFor(share) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'chart-bar');
  svg.setAttribute('viewBox', '0 0 100 10');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const rect = document.createElementNS(SVG, 'rect');
  rect.setAttribute('class', 'chart-fill');
  rect.setAttribute('width', String(Math.max(share * 100, 1.5).toFixed(1)));
  rect.setAttribute('height', '10');
  svg.append(rect);
  return svg;
}
