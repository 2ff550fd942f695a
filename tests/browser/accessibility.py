"""Accessibility checks the browser tests share: axe-core in the page, and a record of what
the page's live regions would make a screen reader say.

axe-core comes from axe-playwright-python (a test requirement): Playwright evaluates it in
the page over the DevTools protocol, so it is never served with the page and the CSP stays
as it is.
"""

from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

# WCAG 2.0 and 2.1, levels A and AA, plus axe's best practices. No rule is turned off.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def axe_violations(page: Page) -> list[str]:
    """One line per failing node: rule, impact, selector, and what axe says is wrong."""
    options = {"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations"]}
    results = Axe().run(page, options=options)
    lines = []
    for violation in results.response["violations"]:
        for node in violation["nodes"]:
            selector = " > ".join(str(part) for part in node["target"])
            lines.append(f"{violation['id']} ({violation['impact']}): {selector}: {violation['help']}")
    return lines


# What assistive technology reads out, modelled on the ARIA rules Chromium follows:
# - a node added to (or text changed in) a live region is said, at that region's politeness;
#   aria-live on the nearest ancestor wins over a role's implicit value (log and status:
#   polite, alert: assertive), and aria-live="off" silences a region;
# - an atomic region (aria-atomic, implicit on status and alert) is said whole;
# - what is not rendered (hidden) is not said; a region that appears is said whole;
# - removals are never said (aria-relevant defaults to "additions text").
# Recording starts once the markup is parsed: nothing that ships in the HTML is "news".
SPOKEN_RECORDER = """
(() => {
  window.__spoken = [];
  const liveRegion = (element) => {
    for (let node = element; node && node.nodeType === 1; node = node.parentElement) {
      const live = node.getAttribute('aria-live');
      if (live) return { region: node, live };
      const role = node.getAttribute('role');
      if (role === 'log' || role === 'status') return { region: node, live: 'polite' };
      if (role === 'alert') return { region: node, live: 'assertive' };
    }
    return null;
  };
  const isAtomic = (region) => {
    const value = region.getAttribute('aria-atomic');
    if (value !== null) return value === 'true';
    return ['status', 'alert'].includes(region.getAttribute('role'));
  };
  const spokenText = (node) => {
    const element = node.nodeType === 3 ? node.parentElement : node;
    if (!element || element.nodeType !== 1 || element.closest('[aria-hidden="true"]')) return '';
    if (!element.checkVisibility()) return '';
    return node.nodeType === 3 ? node.data : element.innerText || '';
  };
  const REGIONS = '[aria-live], [role="log"], [role="status"], [role="alert"]';
  const say = (live, text) => {
    const clean = text.replace(/\\s+/g, ' ').trim();
    if (clean) window.__spoken.push({ live, text: clean });
  };
  const observer = new MutationObserver((records) => {
    const wholeRegions = new Map();
    for (const record of records) {
      const element = record.target.nodeType === 1 ? record.target : record.target.parentElement;
      if (!element) continue;
      if (record.type === 'attributes') {
        // Shown (hidden removed): the regions it holds appear, and are said whole.
        if (element.hidden) continue;
        for (const region of element.querySelectorAll(REGIONS)) {
          const inner = liveRegion(region);
          if (inner.live !== 'off') wholeRegions.set(inner.region, inner.live);
        }
      }
      const found = liveRegion(element);
      if (!found || found.live === 'off') continue;
      if (isAtomic(found.region)) {
        wholeRegions.set(found.region, found.live);
      } else if (record.type === 'characterData') {
        say(found.live, spokenText(record.target));
      } else if (record.type === 'childList') {
        for (const node of record.addedNodes) say(found.live, spokenText(node));
      } else if (record.type === 'attributes') {
        say(found.live, spokenText(element));
      }
    }
    for (const [region, live] of wholeRegions) say(live, spokenText(region));
  });
  document.addEventListener('readystatechange', () => {
    if (document.readyState !== 'interactive') return;
    observer.observe(document.documentElement, {
      subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['hidden'],
    });
  });
})();
"""


def record_speech(page: Page) -> None:
    """Call before the page loads (``open_page(..., before_load=record_speech)``)."""
    page.add_init_script(SPOKEN_RECORDER)


def spoken(page: Page) -> list[dict[str, Any]]:
    """What the live regions said so far: ``[{"live": "polite", "text": "..."}]``, in order."""
    said: list[dict[str, Any]] = page.evaluate("window.__spoken")
    return said


def spoken_texts(page: Page) -> list[str]:
    return [entry["text"] for entry in spoken(page)]


def chromium_live_regions(page: Page) -> dict[str, dict[str, Any]]:
    """Chromium's own view of the live regions (its accessibility tree over the DevTools
    protocol), by element id: ``{"status": {"live": "polite", "atomic": True, ...}}``."""
    session = page.context.new_cdp_session(page)
    try:
        regions = {}
        for node in session.send("Accessibility.getFullAXTree")["nodes"]:
            properties = {item["name"]: item["value"].get("value") for item in node.get("properties", [])}
            if "live" not in properties or "backendDOMNodeId" not in node:
                continue
            remote = session.send("DOM.resolveNode", {"backendNodeId": node["backendDOMNodeId"]})["object"]
            element_id = session.send(
                "Runtime.callFunctionOn",
                {
                    "objectId": remote["objectId"],
                    "functionDeclaration": "function () { return this.id; }",
                    "returnByValue": True,
                },
            )["result"]["value"]
            regions[element_id] = properties
        return regions
    finally:
        session.detach()
