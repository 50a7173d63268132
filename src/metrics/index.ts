export { DEFAULT_RING_MINUTES, type MinuteBucket, MinuteRing } from './minuteRing.js'
export {
  DEFAULT_REFUSAL_LOG_PER_SECOND,
  type Refusal,
  RefusalLog,
  type RefusalLogger,
} from './refusalLog.js'
export {
  BATCH_BUCKETS,
  type GasKind,
  LATENCY_BUCKETS,
  RouteMeter,
  TollgateMetrics,
  type TollgateMetricsOptions,
  type WatcherStatusLike,
} from './tollgateMetrics.js'
