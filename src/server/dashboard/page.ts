/**
 * The dashboard page: one HTML document, its script and its style, served by the dashboard
 * plugin with uPlot from node_modules (no CDN). The script reads the JSON API beside it every
 * 2 s; with a bearer token in the URL's fragment (`#token=...`, never sent to the server) it
 * sends it with every API call.
 */

/** Milliseconds between refreshes of the page's data. */
export const REFRESH_MS = 2_000

/** The HTML of the page; asset URLs are relative to `base` (the plugin's prefix, ending in `/`). */
export function pageHtml(base: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tollgate dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${base}assets/uplot.min.css">
<link rel="stylesheet" href="${base}assets/dashboard.css">
</head>
<body data-base="${base}">
<header><h1>tollgate</h1><span id="network"></span><span id="health-badge" class="badge">…</span></header>
<p id="auth" hidden>This dashboard needs its bearer token: open it as <code>…/#token=YOUR_TOKEN</code>.</p>
<section class="tiles">
  <div class="tile"><h2>Revenue, total</h2><p id="revenue-total">…</p></div>
  <div class="tile"><h2>Revenue, today (UTC)</h2><p id="revenue-today">…</p></div>
  <div class="tile"><h2>Unclaimed</h2><p id="revenue-unclaimed">…</p></div>
  <div class="tile"><h2>Claimed, unsettled</h2><p id="revenue-unsettled">…</p></div>
  <div class="tile"><h2>Channels</h2><p id="channel-count">…</p></div>
  <div class="tile"><h2>Next withdrawal deadline</h2><p id="next-deadline">…</p></div>
</section>
<section class="charts">
  <div><h2>Revenue per minute, last hour</h2><div id="revenue-chart"></div></div>
  <div><h2>Refusals per minute by code</h2><div id="refusals-chart"></div><p id="refusals-none" class="muted" hidden>No refusals in the last hour.</p></div>
</section>
<section>
  <h2>Channels</h2>
  <table id="channels"><thead><tr>
    <th data-sort="payer">Payer</th><th data-sort="balance" class="num">Balance</th>
    <th data-sort="charged" class="num">Charged</th><th data-sort="claimed" class="num">Claimed</th>
    <th data-sort="unclaimed" class="num">Unclaimed</th><th data-sort="deadline">Withdrawal deadline</th>
  </tr></thead><tbody></tbody></table>
  <p class="pager"><button id="prev">‹ previous</button> <span id="page-info"></span> <button id="next">next ›</button></p>
</section>
<section>
  <h2>Settlement history</h2>
  <table id="settlements"><thead><tr>
    <th>Time</th><th>Kind</th><th class="num">Channels</th><th class="num">Amount</th>
    <th class="num">Gas per channel</th><th>Transaction</th>
  </tr></thead><tbody></tbody></table>
</section>
<section>
  <h2>Health</h2>
  <dl id="health"></dl>
</section>
<script src="${base}assets/uplot.iife.min.js"></script>
<script src="${base}assets/dashboard.js"></script>
</body>
</html>
`
}

/** The page's style. */
export const PAGE_CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 16px 32px; color: #1d2433; }
header { display: flex; align-items: baseline; gap: 16px; }
h1 { font-size: 22px; } h2 { font-size: 14px; font-weight: 600; margin: 16px 0 6px; }
.badge { padding: 2px 8px; border-radius: 10px; background: #ddd; font-size: 12px; }
.badge.ok { background: #cdeccd; } .badge.bad { background: #f6c9c9; }
.tiles { display: grid; grid-template-columns: repeat(6, 1fr); gap: 8px; }
.tile { background: #f3f5f9; border-radius: 6px; padding: 4px 10px; }
.tile p { font-size: 20px; margin: 4px 0; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #e3e6ec; white-space: nowrap; }
th[data-sort] { cursor: pointer; } th.sorted::after { content: attr(data-dir); }
.num { text-align: right; } .muted { color: #777; } code { font-size: 12px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; } dt { color: #555; }
`

/** The page's script (plain browser JavaScript; uPlot is loaded before it). */
export const PAGE_SCRIPT = `'use strict'
;(() => {
  const base = document.body.dataset.base
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token')
  if (fromHash) sessionStorage.setItem('tollgate-token', fromHash)
  const token = sessionStorage.getItem('tollgate-token')
  const state = { sort: 'charged', order: 'desc', offset: 0, limit: 50, total: 0, decimals: 6, dollar: true, symbol: '' }
  const charts = {}
  window.tollgateCharts = charts
  const $ = (id) => document.getElementById(id)

  const api = async (path) => {
    const response = await fetch(base + 'api/' + path, {
      headers: token ? { authorization: 'Bearer ' + token } : {},
    })
    if (response.status === 401) {
      $('auth').hidden = false
      throw new Error('unauthorized')
    }
    if (!response.ok) throw new Error(path + ' answered ' + response.status)
    return response.json()
  }

  const dollars = (units) => {
    const scale = 10n ** BigInt(state.decimals)
    const value = BigInt(units)
    const whole = value / scale
    const frac = (value % scale).toString().padStart(state.decimals, '0').slice(0, 4)
    const figure = whole.toLocaleString('en-US') + '.' + frac
    return state.dollar ? '$' + figure : figure + ' ' + state.symbol
  }
  const amount = (cell, units) => {
    cell.textContent = dollars(units)
    cell.title = BigInt(units).toLocaleString('en-US') + ' token units'
  }
  const time = (seconds) => (seconds === null ? '—' : new Date(seconds * 1000).toISOString().replace('T', ' ').slice(0, 19) + ' UTC')
  const short = (hex) => hex.slice(0, 10) + '…' + hex.slice(-6)

  const chart = (name, el, series, data) => {
    const width = el.clientWidth || 560
    const existing = charts[name]
    if (existing && existing.series.length === series.length + 1) {
      existing.setData(data)
      return
    }
    if (existing) existing.destroy()
    charts[name] = new uPlot(
      { width, height: 220, series: [{}, ...series], axes: [{}, { size: 70 }], legend: { show: series.length > 1 } },
      data,
      el,
    )
  }

  const COLORS = ['#d9534f', '#f0ad4e', '#5bc0de', '#9b59b6', '#5cb85c', '#34495e', '#e67e22', '#16a085']

  const drawOverview = (o) => {
    state.decimals = o.token.decimals
    state.dollar = o.token.dollar
    state.symbol = o.token.symbol
    $('network').textContent = o.chain + ' (' + o.network + ')'
    const badge = $('health-badge')
    badge.textContent = o.health.ok ? 'healthy' : 'unhealthy'
    badge.className = 'badge ' + (o.health.ok ? 'ok' : 'bad')
    amount($('revenue-total'), o.revenue.total)
    amount($('revenue-today'), o.revenue.today)
    amount($('revenue-unclaimed'), o.revenue.unclaimed)
    if (o.revenue.unsettled === null) $('revenue-unsettled').textContent = '—'
    else amount($('revenue-unsettled'), o.revenue.unsettled)
    $('channel-count').textContent = o.channels.count.toLocaleString('en-US')
    $('next-deadline').textContent = time(o.nextDeadline)
    const xs = o.series.start.map((ms) => ms / 1000)
    const unit = 10 ** o.token.decimals
    chart('revenue', $('revenue-chart'), [{
      label: 'revenue (' + (o.token.dollar ? '$' : o.token.symbol) + ')', stroke: '#2a7ae2', fill: '#2a7ae2', width: 1,
      paths: uPlot.paths.bars({ size: [0.8, 40] }),
      value: (_u, v) => (v === null ? '—' : o.token.dollar ? '$' + v.toFixed(4) : v.toFixed(4) + ' ' + o.token.symbol),
    }], [xs, o.series.charged.map((u) => Number(u) / unit)])
    const codes = Object.keys(o.series.refusals)
    $('refusals-none').hidden = codes.length > 0
    chart('refusals', $('refusals-chart'), (codes.length ? codes : ['none']).map((code, i) => ({
      label: code, stroke: COLORS[i % COLORS.length], width: 2,
    })), [xs, ...(codes.length ? codes.map((c) => o.series.refusals[c]) : [xs.map(() => 0)])])
    const h = o.health
    const rpc = Object.entries(h.rpcErrors).map(([m, n]) => m + ': ' + n).join(', ') || 'none'
    const rows = [
      ['watcher lag', (h.watcher.lagBlocks ?? '—') + ' blocks, ' + (h.watcher.lagSeconds === null ? '—' : h.watcher.lagSeconds.toFixed(1) + ' s since the last poll')],
      ['last block applied', h.watcher.lastProcessedBlock ?? '—'],
      ['watcher failures in a row', h.watcher.consecutiveFailures],
      ['RPC errors', rpc],
      ['signature backend', h.signatureBackend],
      ['store mode', h.storeMode],
      ...h.upstreams.map((u) => ['upstream ' + u.path, u.reachable ? 'reachable' : 'unreachable: ' + (u.error ?? '')]),
      ...h.feeds.map((f) => ['feed ' + f.path, f.connected ? 'connected' : 'down']),
    ]
    const dl = $('health')
    dl.replaceChildren(...rows.flatMap(([k, v]) => {
      const dt = document.createElement('dt'); dt.textContent = k
      const dd = document.createElement('dd'); dd.textContent = String(v)
      return [dt, dd]
    }))
  }

  const drawChannels = (page) => {
    state.total = page.total
    const body = document.querySelector('#channels tbody')
    body.replaceChildren(...page.channels.map((c) => {
      const tr = document.createElement('tr')
      const payer = tr.insertCell(); payer.textContent = short(c.payer); payer.title = c.payer + ' (channel ' + c.channelId + ')'
      for (const field of ['balance', 'charged', 'claimed', 'unclaimed']) {
        const cell = tr.insertCell(); cell.className = 'num'; amount(cell, c[field])
      }
      tr.insertCell().textContent = time(c.withdrawalDeadline)
      return tr
    }))
    const last = Math.min(page.total, page.offset + page.channels.length)
    $('page-info').textContent = page.total === 0 ? 'no channels' : (page.offset + 1) + '–' + last + ' of ' + page.total.toLocaleString('en-US')
    $('prev').disabled = page.offset === 0
    $('next').disabled = last >= page.total
    for (const th of document.querySelectorAll('#channels th[data-sort]')) {
      const on = th.dataset.sort === state.sort
      th.classList.toggle('sorted', on)
      th.dataset.dir = on ? (state.order === 'asc' ? ' ▲' : ' ▼') : ''
    }
  }

  const drawSettlements = (page) => {
    const body = document.querySelector('#settlements tbody')
    body.replaceChildren(...page.entries.map((e) => {
      const tr = document.createElement('tr')
      tr.insertCell().textContent = new Date(e.at).toISOString().replace('T', ' ').slice(0, 19)
      tr.insertCell().textContent = e.kind === 'failure' ? 'failed: ' + e.code : e.kind + (e.method ? ' (' + e.method + ')' : '')
      const channels = tr.insertCell(); channels.className = 'num'; channels.textContent = e.channels ?? ''
      const value = tr.insertCell(); value.className = 'num'
      if (e.amount !== undefined) amount(value, e.amount)
      const gas = tr.insertCell(); gas.className = 'num'
      gas.textContent = e.kind === 'claim' ? e.gasPerChannel.toLocaleString('en-US') : e.kind === 'settle' ? Number(e.gasUsed).toLocaleString('en-US') : ''
      const tx = tr.insertCell()
      if (e.hash) {
        if (e.url) { const a = document.createElement('a'); a.href = e.url; a.textContent = short(e.hash); a.title = e.hash; tx.append(a) }
        else { tx.textContent = short(e.hash); tx.title = e.hash }
      } else tx.textContent = e.message ?? ''
      return tr
    }))
  }

  const channelQuery = () => 'channels?sort=' + state.sort + '&order=' + state.order + '&offset=' + state.offset + '&limit=' + state.limit
  const refresh = async () => {
    try {
      const [o, c, s] = await Promise.all([api('overview'), api(channelQuery()), api('settlements')])
      drawOverview(o); drawChannels(c); drawSettlements(s)
      document.body.dataset.loaded = 'true'
    } catch (err) {
      if (err.message !== 'unauthorized') console.warn('tollgate dashboard: ' + err.message)
    }
  }
  for (const th of document.querySelectorAll('#channels th[data-sort]')) {
    th.addEventListener('click', () => {
      if (state.sort === th.dataset.sort) state.order = state.order === 'asc' ? 'desc' : 'asc'
      else { state.sort = th.dataset.sort; state.order = th.dataset.sort === 'payer' ? 'asc' : 'desc' }
      state.offset = 0
      void refresh()
    })
  }
  $('prev').addEventListener('click', () => { state.offset = Math.max(0, state.offset - state.limit); void refresh() })
  $('next').addEventListener('click', () => { state.offset += state.limit; void refresh() })
  void refresh()
  setInterval(refresh, ${REFRESH_MS})
})()
`
