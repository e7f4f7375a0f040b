import { timingSafeEqual, createHash } from 'node:crypto';

/** The admin bearer token, from the environment (never from the cluster file, which is shared widely). */
export function adminTokenFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const t = env.REELCDN_ADMIN_TOKEN;
  return t && t.length > 0 ? t : undefined;
}

/** Constant-time check of `Authorization: Bearer <token>`. No token configured → nobody is admitted. */
export function isAuthorized(header: string | undefined, token: string | undefined): boolean {
  if (!token || !header) return false;
  const m = /^Bearer\s+(.+)$/i.exec(header.trim());
  if (!m) return false;
  // Hash both sides so the compare is constant-time whatever the lengths.
  const a = createHash('sha256').update(m[1]!).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

/**
 * Makes `open` (an adminGuard's set) open exactly the paths the cluster file's `admin` opens:
 * `/health` with openHealth, `/metrics` with openMetrics. At start and on reload alike; other
 * entries (the dashboard's page) are left as they are.
 */
export function setOpenAdminPaths(open: Set<string>, admin: { openHealth: boolean; openMetrics: boolean }): Set<string> {
  for (const [path, isOpen] of [['/health', admin.openHealth], ['/metrics', admin.openMetrics]] as const) {
    if (isOpen) open.add(path);
    else open.delete(path);
  }
  return open;
}
