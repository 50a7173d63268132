export {
  CHANNEL_SORTS,
  type ChannelPage,
  type ChannelSort,
  channels,
  type DashboardSource,
  DEFAULT_PAGE_SIZE,
  DEFAULT_SERIES_MINUTES,
  type ExtraHealth,
  MAX_PAGE_SIZE,
  type Overview,
  overview,
  type SettlementPage,
  settlements,
} from './api.js'
export { ADMIN_TOKEN_ENV, bearerCheck, MIN_TOKEN_LENGTH } from './auth.js'
export { DEFAULT_HISTORY_ENTRIES, type SettlementEvent, SettlementHistory } from './history.js'
export { PAGE_CSS, PAGE_SCRIPT, pageHtml, REFRESH_MS } from './page.js'
export { type DashboardOptions, dashboardPlugin } from './plugin.js'
