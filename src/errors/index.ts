export {
  type Accepted,
  accept,
  type Rejection,
  type Result,
  reject,
  TollgateError,
} from './base.js'
export { describe, ERROR_CODES, type ErrorCode, isErrorCode, statusOf } from './codes.js'
