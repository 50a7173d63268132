/**
 * The Lua scripts of the Redis store: each one runs atomically on one channel's hash, so that
 * every instance sharing the Redis decides on the same record (DESIGN.md, Scale). They enforce
 * the rules of src/ledger/transitions.ts (checkVoucher, acceptVoucher, charge, putInFlight,
 * recoverInFlight, applyEvent) on amounts kept as decimal strings: Lua numbers are doubles, so
 * amounts are compared and added digit by digit and never lose precision.
 *
 * Channel hash fields: `cfg` (the channel config, JSON), `ch` charged, `cl` ceiling (highest
 * voucher), `fl` in flight, `sg` its signature, `bl` balance, `tc` totalClaimed, `wr`
 * withdrawRequestedAt (unix s), `rn` refundNonce, `sy` syncedAt (unix ms), `ho` holder (empty
 * when free), `hu` hold expiry (unix ms, Redis clock), `hk` the hold's kind, `pc`/`ps` the voucher
 * held before the current hold (restored on release), `pv` the last holder whose hold a successor
 * voucher ended.
 */

/** Decimal helpers shared by the scripts: `cmp` and `add` on non-negative integers without leading zeros. */
const DECIMAL = `
local function cmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end
local function add(a, b)
  local out, i, j, carry = {}, #a, #b, 0
  while i > 0 or j > 0 or carry > 0 do
    local d = carry
    if i > 0 then d = d + string.byte(a, i) - 48; i = i - 1 end
    if j > 0 then d = d + string.byte(b, j) - 48; j = j - 1 end
    if d >= 10 then carry = 1; d = d - 10 else carry = 0 end
    out[#out + 1] = string.char(d + 48)
  end
  if #out == 0 then return '0' end
  return string.reverse(table.concat(out))
end
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

/**
 * hold(KEYS[1] = channel, KEYS[2] = the payer's rate counter; ARGV: holder, ttlMs, maxClaimable,
 * kind (e exact | c credit | r refund), price, inFlight (what the accepted voucher puts in
 * flight), signature, exposureCap, extend (1: a top-up on the caller's own hold), payer limit
 * (0: none), its window in ms).
 *
 * Replies `{'unknown'}`, `{'limited', pttl}` (the payer's counter reached its limit: checked
 * before anything else, counted once the hold is taken), `{'busy'}` (held by another holder whose hold has not expired),
 * `{'lost'}` (an extend whose hold is gone), `{'refused', code, state...}` or
 * `{'held', state..., previousCeiling, previousSignature}` with state = ch, cl, fl, sg, bl, tc,
 * wr, rn, sy. An expired hold's holder is taken to have died: what it had in flight is charged
 * (the crash rule, recoverInFlight) before the new voucher is judged. A live request hold (kind
 * e) meets an exact voucher that covers its whole in-flight amount plus the price
 * (`maxClaimable == inFlight + price`): the payer signs on from that request's receipt, so the
 * hold is ended as committed at its in-flight amount (its own end, written behind, then finds
 * `pv`) and the voucher is judged on it. A session's hold (kind c) is never ended so.
 */
export const HOLD_SCRIPT = `${DECIMAL}
local r = redis.call('HMGET', KEYS[1], 'ch', 'cl', 'fl', 'sg', 'bl', 'tc', 'wr', 'rn', 'sy', 'ho', 'hu', 'hk')
if not r[1] then return {'unknown'} end
local extend = ARGV[9] == '1'
local limit = tonumber(ARGV[10])
local counted = limit > 0 and not extend
if counted and tonumber(redis.call('GET', KEYS[2]) or '0') >= limit then
  return {'limited', tostring(redis.call('PTTL', KEYS[2]))}
end
local now = nowMs()
local ch, cl, fl, sg = r[1], r[2], r[3], r[4]
local holder = r[10] or ''
local max, kind = ARGV[3], ARGV[4]
if extend then
  if holder ~= ARGV[1] then return {'lost'} end
elseif holder ~= '' then
  if tonumber(r[11]) > now then
    if not (r[12] == 'e' and kind == 'e' and cmp(fl, ch) > 0 and max == add(fl, ARGV[5])) then
      return {'busy'}
    end
    ch = fl
    redis.call('HSET', KEYS[1], 'ch', ch, 'ho', '', 'hu', '0', 'pv', holder)
  else
    if cmp(fl, ch) > 0 then
      if cmp(fl, cl) > 0 then ch = cl else ch = fl end
    end
    fl = ch
    redis.call('HSET', KEYS[1], 'ch', ch, 'fl', fl, 'ho', '', 'hu', '0')
  end
end
local bl, tc, wr = r[5], r[6], r[7]
local function refused(code)
  return {'refused', code, ch, cl, fl, sg, bl, tc, wr, r[8], r[9]}
end
if kind == 'r' then
  if max ~= ch then return refused('invalid_batch_settlement_evm_cumulative_amount_mismatch') end
  if cmp(bl, ch) <= 0 then return refused('invalid_batch_settlement_evm_refund_no_balance') end
else
  if wr ~= '0' then return refused('tollgate_withdrawal_pending') end
  local c = cmp(max, add(ch, ARGV[5]))
  if (kind == 'e' and c ~= 0) or c < 0 then
    return refused('invalid_batch_settlement_evm_cumulative_amount_mismatch')
  end
  if cmp(max, bl) > 0 then return refused('invalid_batch_settlement_evm_cumulative_exceeds_balance') end
  if cmp(max, tc) <= 0 then return refused('invalid_batch_settlement_evm_cumulative_below_claimed') end
  if cmp(max, add(tc, ARGV[8])) > 0 then return refused('tollgate_exposure_cap') end
end
local pc, ps = cl, sg
if cmp(max, cl) > 0 then cl = max; sg = ARGV[7] end
local target = add(ch, ARGV[6])
if cmp(target, cl) > 0 then target = cl end
if cmp(target, fl) > 0 then fl = target end
local expiry = tostring(now + tonumber(ARGV[2]))
if extend then
  redis.call('HSET', KEYS[1], 'cl', cl, 'sg', sg, 'fl', fl, 'hu', expiry)
  local prev = redis.call('HMGET', KEYS[1], 'pc', 'ps')
  pc, ps = prev[1], prev[2]
else
  redis.call('HSET', KEYS[1], 'cl', cl, 'sg', sg, 'fl', fl, 'ho', ARGV[1], 'hu', expiry, 'hk', kind, 'pc', pc, 'ps', ps)
end
if counted and redis.call('INCR', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[11]) end
return {'held', ch, cl, fl, sg, bl, tc, wr, r[8], r[9], pc, ps}
`

/**
 * end(KEYS[1]; ARGV: holder, charged (absolute), restore (1: a release, the voucher held before
 * the hold comes back unless charges rely on the newer one)). Raises the charged total to
 * `charged` (never beyond what was in flight), ends what was in flight and frees the channel.
 * Replies 1; 2 when a successor voucher ended the hold already (see HOLD_SCRIPT); 0 when the hold
 * is not the caller's any more; -1 when `charged` exceeds what was in flight.
 */
export const END_SCRIPT = `${DECIMAL}
local r = redis.call('HMGET', KEYS[1], 'ho', 'ch', 'cl', 'fl', 'pc', 'ps', 'pv')
if r[1] ~= ARGV[1] then
  if r[7] == ARGV[1] then return 2 end
  return 0
end
local ch = r[2]
if cmp(ARGV[2], ch) > 0 then
  if cmp(ARGV[2], r[4]) > 0 then return -1 end
  ch = ARGV[2]
end
if ARGV[3] == '1' and cmp(r[3], r[5]) > 0 and cmp(ch, r[5]) <= 0 then
  redis.call('HSET', KEYS[1], 'ch', ch, 'fl', ch, 'ho', '', 'hu', '0', 'cl', r[5], 'sg', r[6])
else
  redis.call('HSET', KEYS[1], 'ch', ch, 'fl', ch, 'ho', '', 'hu', '0')
end
return 1
`

/**
 * reserve(KEYS[1]; ARGV: holder, charged (absolute), reserve, ttlMs): a held session writes its
 * charged total (within what was in flight) and reserves up to `reserve` beyond it (at most the
 * ceiling), and its hold is renewed. Replies `{ch, fl}`, or 0 when the hold is not the caller's.
 */
export const RESERVE_SCRIPT = `${DECIMAL}
local r = redis.call('HMGET', KEYS[1], 'ho', 'ch', 'cl', 'fl')
if r[1] ~= ARGV[1] then return 0 end
local ch, fl = r[2], r[4]
if cmp(ARGV[2], ch) > 0 then
  if cmp(ARGV[2], fl) > 0 then ch = fl else ch = ARGV[2] end
end
local target = add(ch, ARGV[3])
if cmp(target, r[3]) > 0 then target = r[3] end
if cmp(target, fl) > 0 then fl = target end
if cmp(ch, fl) > 0 then fl = ch end
redis.call('HSET', KEYS[1], 'ch', ch, 'fl', fl, 'hu', tostring(nowMs() + tonumber(ARGV[4])))
return {ch, fl}
`

/**
 * create(KEYS[1]; ARGV: cfg, ch, cl, fl, sg, bl, tc, wr, rn, sy): a channel seen for the first
 * time, as read from chain. An existing record wins (another instance was first). Replies 1 when
 * created, 0 when it existed.
 */
export const CREATE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'cfg', ARGV[1], 'ch', ARGV[2], 'cl', ARGV[3], 'fl', ARGV[4], 'sg', ARGV[5],
  'bl', ARGV[6], 'tc', ARGV[7], 'wr', ARGV[8], 'rn', ARGV[9], 'sy', ARGV[10], 'ho', '', 'hu', '0', 'pc', ARGV[3], 'ps', ARGV[5])
return 1
`

/**
 * merge(KEYS[1]; same ARGV as create): a record put as a whole (ChannelStore.put). Fields only
 * the server moves never go backwards: the charged total, the in-flight amount and the ceiling
 * (with its signature) are raised, totalClaimed and refundNonce too; the chain mirror (balance,
 * withdrawal, syncedAt) is taken as given.
 */
export const MERGE_SCRIPT = `${DECIMAL}
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'cfg', ARGV[1], 'ch', ARGV[2], 'cl', ARGV[3], 'fl', ARGV[4], 'sg', ARGV[5],
    'bl', ARGV[6], 'tc', ARGV[7], 'wr', ARGV[8], 'rn', ARGV[9], 'sy', ARGV[10], 'ho', '', 'hu', '0', 'pc', ARGV[3], 'ps', ARGV[5])
  return 1
end
local r = redis.call('HMGET', KEYS[1], 'ch', 'cl', 'fl', 'tc', 'rn')
local function top(mine, given) if cmp(given, mine) > 0 then return given end return mine end
redis.call('HSET', KEYS[1], 'ch', top(r[1], ARGV[2]), 'fl', top(r[3], ARGV[4]), 'tc', top(r[4], ARGV[7]),
  'rn', top(r[5], ARGV[9]), 'bl', ARGV[6], 'wr', ARGV[8], 'sy', ARGV[10])
if cmp(ARGV[3], r[2]) > 0 then redis.call('HSET', KEYS[1], 'cl', ARGV[3], 'sg', ARGV[5]) end
return 1
`

/**
 * apply(KEYS[1]; ARGV: type, a, b): mirrors an on-chain event with absolute values, so applying
 * one twice changes nothing (applyEvent): deposited (a balance), claimed (a totalClaimed,
 * raised only), refunded (a balance, b refundNonce raised only), withdrawInitiated (a
 * initiatedAt), withdrawSeen (a finalizeAfter, the withdrawal set only when none is pending),
 * withdrawDropped (a finalizeAfter, cleared only when it is the pending one), withdrawFinalized
 * (a balance). The escrow sets finalizeAfter = initiatedAt + withdrawDelay (from `cfg`). Replies
 * the state as hold does, or 0 for a channel not in the store.
 */
export const APPLY_SCRIPT = `${DECIMAL}
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local kind, a, b = ARGV[1], ARGV[2], ARGV[3]
local sy = tostring(nowMs())
if kind == 'deposited' then
  redis.call('HSET', KEYS[1], 'bl', a, 'sy', sy)
elseif kind == 'claimed' then
  if cmp(a, redis.call('HGET', KEYS[1], 'tc')) > 0 then redis.call('HSET', KEYS[1], 'tc', a) end
  redis.call('HSET', KEYS[1], 'sy', sy)
elseif kind == 'refunded' then
  if cmp(b, redis.call('HGET', KEYS[1], 'rn')) > 0 then redis.call('HSET', KEYS[1], 'rn', b) end
  redis.call('HSET', KEYS[1], 'bl', a, 'sy', sy)
elseif kind == 'withdrawInitiated' then
  redis.call('HSET', KEYS[1], 'wr', a, 'sy', sy)
elseif kind == 'withdrawSeen' or kind == 'withdrawDropped' then
  local delay = cjson.decode(redis.call('HGET', KEYS[1], 'cfg')).withdrawDelay
  local initiatedAt = tostring(tonumber(a) - delay)
  local wr = redis.call('HGET', KEYS[1], 'wr')
  if kind == 'withdrawSeen' and wr == '0' then redis.call('HSET', KEYS[1], 'wr', initiatedAt) end
  if kind == 'withdrawDropped' and wr == initiatedAt then redis.call('HSET', KEYS[1], 'wr', '0', 'sy', sy) end
elseif kind == 'withdrawFinalized' then
  redis.call('HSET', KEYS[1], 'bl', a, 'wr', '0', 'sy', sy)
end
return redis.call('HMGET', KEYS[1], 'ch', 'cl', 'fl', 'sg', 'bl', 'tc', 'wr', 'rn', 'sy')
`

/**
 * Compare-and-set of one metadata field (KEYS[1] the meta hash): ARGV field, '1' and the
 * expected value or '0' for none, '1' and the new value or '0' to delete. 1 when it was set, 0
 * when the field was not what was expected. What several settlers take their lease with.
 */
export const META_CAS_SCRIPT = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '0' then
  if current then return 0 end
elseif current ~= ARGV[3] then
  return 0
end
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
`
