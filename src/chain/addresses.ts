/**
 * Canonical contract addresses, the same on every chain (x402 batch-settlement deployments by
 * CREATE2, and Multicall3). Stock x402 clients compute channel ids with the escrow address and
 * read channel state there, so a development chain must have tollgate's contracts at exactly these.
 */
export const CANONICAL = Object.freeze({
  escrow: '0x4020074e9dF2ce1deE5A9C1b5c3f541D02a10003',
  erc3009Collector: '0x4020806089470a89826cB9fB1f4059150b550004',
  permit2Collector: '0x4020425FAf3B746C082C2f942b4E5159887B0005',
  multicall3: '0xcA11bde05977b3631167028862bE2a173976CA11',
} as const)
