/** Price strings are wire format, shared with the payer: they live in protocol (STYLE.md). */
export { type Price, parseDollars, parsePrice } from '../../protocol/parsePrice.js'
