/**
 * Reconnect delays: exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
 * Jitter"): the n-th retry waits a random time in `[ceiling * (1 - jitter), ceiling]` where
 * `ceiling = min(cap, base * 2^n)`. With `jitter = 1` that is the whole `[0, ceiling]` range, which spreads a
 * fleet of agents that lost the same server over the window instead of having them reconnect in lockstep.
 */

/** Ceiling of the first retry. */
export const BACKOFF_BASE_MS = 250;
/** Largest ceiling; also the delay after an authentication failure. */
export const BACKOFF_CAP_MS = 30_000;
/** Fraction of the ceiling that is randomised: 1 = full jitter. */
export const BACKOFF_JITTER = 1;
/** Jitter on the authentication-failure delay: a refused agent waits between half the cap and the cap. */
export const AUTH_RETRY_JITTER = 0.5;

export interface BackoffPolicy {
  /** @default BACKOFF_BASE_MS */
  baseMs: number;
  /** @default BACKOFF_CAP_MS */
  capMs: number;
  /** @default BACKOFF_JITTER */
  jitter: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffPolicy> = Object.freeze({
  baseMs: BACKOFF_BASE_MS,
  capMs: BACKOFF_CAP_MS,
  jitter: BACKOFF_JITTER,
});

/** The largest delay of retry number `attempt` (0-based). */
export function backoffCeiling(attempt: number, policy: BackoffPolicy): number {
  const exponent = Math.min(Math.max(0, Math.floor(attempt)), 30);
  return Math.min(policy.capMs, policy.baseMs * 2 ** exponent);
}

/** A delay for retry number `attempt` (0-based), uniformly in `[ceiling * (1 - jitter), ceiling]`. */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const ceiling = backoffCeiling(attempt, policy);
  const jitter = Math.min(1, Math.max(0, policy.jitter));
  return Math.round(ceiling * (1 - jitter * random()));
}

/** The delay before retrying after the server refused our credential: about the cap, so a revoked agent never spins. */
export function authRetryDelay(policy: BackoffPolicy, random: () => number = Math.random): number {
  return Math.round(policy.capMs * (1 - AUTH_RETRY_JITTER * random()));
}
