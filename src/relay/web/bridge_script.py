"""The thank-you script the Worker serves as ``GET /bridge.js?shop=<name>``, kept as a Python string
because the Worker's upload carries Python modules only.

What it does, in the shopper's browser (docs/OPERATIONS.md, "Identity bridge"):

- Reads the cookie choice: the tag's ``data-consent``, else Cookiebot, OneTrust, IAB TCF v2
  (``__tcfapi``), Lightspeed's ``COOKIELAW_ADS`` cookie, Google Consent Mode (``ad_storage`` and
  ``ad_user_data`` in ``dataLayer``), else "unknown".
- On any page, with consent "granted" only, remembers a landing ``fbclid`` for 90 days in a
  first-party cookie as Meta builds ``fbc`` (``fb.1.<ms>.<fbclid>``: the click's time, the fbclid
  unchanged; rewritten only for a different fbclid). No cookie is written otherwise.
- On the thank-you page (the tag has ``data-order``, or the path has ``/thankyou``; the order then
  comes from the page's own ``?format=json``) it posts once: the order number and total, ``_fbp``
  and ``_fbc`` verbatim (else the remembered click as ``fbc``, else the page's own ``fbclid``), and
  the choice. A reload posts again only without consent to remember it had posted (sessionStorage is
  used only with "granted"); the relay keeps the first post and counts the rest. With consent
  "denied" it reads no cookie and posts only the number, total and choice, so the relay can skip the
  order. The post is a CORS "simple" request (text/plain, ``keepalive``): no preflight, and it
  survives the page being closed.
- With ``data-browser-purchase="1"`` and ``data-event-id`` it also fires the Pixel's Purchase with the
  relay's ``event_id`` when ``fbq`` exists, so Meta deduplicates the two.

No dependency, no ``eval``, nothing but ``fetch``/``sendBeacon`` to the relay's own origin.
"""

from __future__ import annotations

SOURCE = r"""/* relay bridge: the shopper's Meta browser ids and cookie choice, once per order, to the relay. */
(function (w, d) {
  "use strict";
  var me = d.currentScript;
  if (!me || !me.src || !w.JSON) return;
  var src = new URL(me.src, w.location.href);
  var shop = src.searchParams.get("shop");
  if (!shop) return;
  var endpoint = src.origin + "/bridge?shop=" + encodeURIComponent(shop);
  var data = me.dataset || {};
  var KEEP = "_rl_cid", DAY = 86400, ID = /^fb\.\d{1,2}\.\d{9,13}\.[A-Za-z0-9_-]{1,400}(\.[A-Za-z0-9_-]{1,64})?$/;
  var CLID = /^[A-Za-z0-9_-]{1,400}$/;

  function cookie(name) {
    var parts = d.cookie ? d.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) {
        try { return decodeURIComponent(parts[i].slice(eq + 1)); } catch (e) { return parts[i].slice(eq + 1); }
      }
    }
    return null;
  }

  function fromAttribute() {
    var c = data.consent;
    return c === "granted" || c === "denied" ? c : null;
  }
  function fromCookiebot() {
    var c = w.Cookiebot;
    if (!c || !c.consent || c.hasResponse === false) return null;
    return c.consent.marketing ? "granted" : "denied";
  }
  function fromOneTrust() {
    var g = w.OnetrustActiveGroups;
    if (typeof g !== "string" || !g) return null;
    return g.indexOf(",C0004,") >= 0 ? "granted" : "denied";
  }
  function fromLightspeed() {
    var v = cookie("COOKIELAW_ADS");
    if (v === null) return null;
    return /^(1|true|yes|allow|granted)$/i.test(v) ? "granted" : "denied";
  }
  function fromConsentMode() {
    var l = w.dataLayer, found = null;
    if (!l || !l.length) return null;
    for (var i = 0; i < l.length; i++) {
      var e = l[i];
      if (e && e[0] === "consent" && e[2] && (e[2].ad_storage || e[2].ad_user_data)) {
        found = e[2].ad_storage === "denied" || e[2].ad_user_data === "denied" ? "denied" : "granted";
      }
    }
    return found;
  }
  function fromTcf(done) {
    if (typeof w.__tcfapi !== "function") return done(null);
    var settled = false;
    function settle(value) { if (!settled) { settled = true; done(value); } }
    w.setTimeout(function () { settle(null); }, 5000);
    try {
      w.__tcfapi("addEventListener", 2, function (tc, ok) {
        if (!ok || !tc || (tc.eventStatus !== "tcloaded" && tc.eventStatus !== "useractioncomplete")) return;
        if (tc.listenerId !== undefined) {
          try { w.__tcfapi("removeEventListener", 2, function () {}, tc.listenerId); } catch (e) { /* ignore */ }
        }
        var store = tc.purpose && tc.purpose.consents && tc.purpose.consents[1];
        settle(tc.gdprApplies === false || store ? "granted" : "denied");
      });
    } catch (e) { settle(null); }
  }
  function consent(done) {
    var now = fromAttribute() || fromCookiebot() || fromOneTrust();
    if (now) return done(now);
    fromTcf(function (tcf) { done(tcf || fromLightspeed() || fromConsentMode() || "unknown"); });
  }

  function amount(text) {
    if (text === undefined || text === null || text === "") return null;
    var t = String(text).replace(/[^0-9.,-]/g, "");
    // the last separator is the decimal one: 140,40 and 1.234,56 (Dutch), 140.40 and 1,234.56
    if (t.lastIndexOf(",") > t.lastIndexOf(".")) t = t.replace(/\./g, "").replace(",", ".");
    else t = t.replace(/,/g, "");
    var n = parseFloat(t);
    return isFinite(n) ? n : null;
  }
  function order(done) {
    if (data.order) return done(String(data.order).trim(), amount(data.value));
    if (!/\/thankyou/.test(w.location.pathname) || !w.fetch) return;
    w.fetch(w.location.pathname + "?format=json", { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (page) {
        var info = page && page.order && page.order.information;
        if (info && info.number) done(String(info.number), amount(info.price_incl));
      })["catch"](function () { /* not a Lightspeed thank-you page */ });
  }

  function send(body) {
    var text = JSON.stringify(body);
    if (w.fetch) {
      w.fetch(endpoint, { method: "POST", body: text, keepalive: true, mode: "cors", credentials: "omit",
                          headers: { "Content-Type": "text/plain" } })["catch"](function () { /* best effort */ });
    } else if (w.navigator.sendBeacon) {
      w.navigator.sendBeacon(endpoint, text);
    }
  }
  function purchase(number, value, eventId) {
    if (data.browserPurchase !== "1" || !eventId || typeof w.fbq !== "function") return;
    var custom = { order_id: number };
    if (value !== null) custom.value = value;
    if (data.currency) custom.currency = data.currency;
    w.fbq("track", "Purchase", custom, { eventID: eventId });
  }

  consent(function (choice) {
    var clid = new URLSearchParams(w.location.search).get("fbclid");
    if (clid && !CLID.test(clid)) clid = null;
    var kept = cookie(KEEP);
    if (kept && !ID.test(kept)) kept = null;
    if (choice === "granted" && clid && (!kept || kept.split(".")[3] !== clid)) {
      kept = "fb.1." + Date.now() + "." + clid;   // Meta's fbc format, the click's time, the fbclid unchanged
      d.cookie = KEEP + "=" + kept + "; Max-Age=" + 90 * DAY + "; Path=/; SameSite=Lax" +
        (w.location.protocol === "https:" ? "; Secure" : "");
    }
    order(function (number, value) {
      if (!number) return;
      var guard = "rl_sent_" + number;
      try { if (choice === "granted" && w.sessionStorage.getItem(guard)) return; } catch (e) { /* no storage */ }
      var body = { order_number: number, consent: choice, url: w.location.origin + w.location.pathname };
      if (value !== null) body.value = value;
      if (choice !== "denied") {
        var fbp = cookie("_fbp"), fbc = cookie("_fbc");
        if (fbp && ID.test(fbp)) body.fbp = fbp;
        if (fbc && ID.test(fbc)) body.fbc = fbc;
        else if (kept) body.fbc = kept;
        else if (clid) body.fbclid = clid;
      }
      send(body);
      try { if (choice === "granted") w.sessionStorage.setItem(guard, "1"); } catch (e) { /* no storage */ }
      purchase(number, value, data.eventId);
    });
  });
})(window, document);
"""
