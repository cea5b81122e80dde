// The text `kubectl alcazar status` prints.
import { describeTimeLeft, formatDurationShort } from '../inspect/format.js';
import type { StatusReport } from './report.js';

/** Width of the widest one-line label ("trust domain: ", "certificates: "): every value starts there. */
const LABEL_WIDTH = 14;
const field = (label: string, value: string) => `${`${label}:`.padEnd(LABEL_WIDTH)}${value}`;

export function formatStatusText(report: StatusReport): string {
  const lines: string[] = [];
  const ca = report.certificateAuthority;
  lines.push(
    field(
      'CA',
      ca.found
        ? `${ca.ready === 'True' ? 'Ready' : `NOT READY (${ca.reason || 'no Ready condition'})`}${ca.ready === 'True' ? '' : `: ${ca.message}`}`
        : 'no CertificateAuthority "default"',
    ),
  );
  if (ca.trustDomain) lines.push(field('trust domain', ca.trustDomain));
  if (ca.mode) lines.push(field('root mode', `${ca.mode} (CA namespace ${report.caNamespace})`));
  for (const c of ca.conditions.filter((c) => c.type !== 'Ready')) {
    lines.push(`  ${c.type}=${c.status} ${c.reason}${c.status === 'True' ? '' : `: ${c.message}`}`);
  }
  lines.push('roots:');
  if (report.roots.length === 0) lines.push('  none reported');
  for (const r of report.roots) {
    lines.push(
      `  ${r.active ? 'active ' : 'trusted'} ${r.fingerprintSha256.slice(0, 16)}…  expires ${r.notAfter} (${describeTimeLeft(r.timeLeftMs)})`,
    );
  }
  const rot = report.rotation;
  lines.push(
    field(
      'rotation',
      `${rot.phase}${rot.startedAt ? ` since ${rot.startedAt}` : ''}${rot.message ? ` (${rot.message})` : ''}`,
    ),
  );
  lines.push(field('leader', leaderText(report.leader)));
  const c = report.counts;
  lines.push(
    field(
      'certificates',
      `${c.issuedCertificates} issued for ${c.managedServiceAccounts} managed ServiceAccounts, ${c.failingCertificates} failing (controller's count)`,
    ),
  );
  if ('error' in report.failing) {
    lines.push(`failing ServiceAccounts: cannot check (${report.failing.error})`);
  } else {
    lines.push(`failing ServiceAccounts: ${report.failing.total}`);
    for (const f of report.failing.listed) {
      lines.push(`  ${f.namespace}/${f.serviceAccount}: ${f.reason}: ${f.message}`);
    }
    const hidden = report.failing.total - report.failing.listed.length;
    if (hidden > 0) lines.push(`  … and ${hidden} more (--max-failing)`);
  }
  lines.push('');
  lines.push(
    report.problems.length === 0
      ? 'healthy'
      : `problems:\n${report.problems.map((p) => `  - ${p}`).join('\n')}`,
  );
  return lines.join('\n');
}

function leaderText(leader: StatusReport['leader']): string {
  if ('error' in leader) return `unknown (${leader.error})`;
  if ('notChecked' in leader) return 'not checked (--no-lease)';
  if (!leader.holder) return 'none';
  const renewed =
    leader.renewedAgoMs === undefined ? '' : `, renewed ${formatDurationShort(leader.renewedAgoMs)} ago`;
  return `${leader.holder}${renewed}${leader.current ? '' : ' (expired)'}`;
}
