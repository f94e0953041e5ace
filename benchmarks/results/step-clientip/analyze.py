# analyze.py DIR: medians, per-step ratios and benchstat inputs (cpu.sN.txt)
# from DIR/cal.txt and DIR/cpu.txt (written by run-cpu.sh).
import statistics as st, collections, sys
d = sys.argv[1] if len(sys.argv) > 1 else '.'
N = 100000
cal = collections.defaultdict(list)
for l in open(d + '/cal.txt'):
    r, b, c, u, s, *_ = l.split()
    cal[(b, c)].append(float(u) + float(s))
rows = collections.defaultdict(dict)  # (case, version) -> round -> (cpu, wall, B, allocs)
for l in open(d + '/cpu.txt'):
    r, b, c, u, s, ns, bop, al = l.split()
    v = b.split('.')[1]
    cpu = (float(u) + float(s) - st.mean(cal[(b, c)])) / N * 1e9
    rows[(c, v)][int(r)] = (cpu, float(ns), int(bop), int(al))
vers = ['s0', 's1', 's2', 's3']
cases = ['bare', 'full100gin', 'full10gin', 'sentinel', 'accesslog', 'ratelimit']
names = {'bare': 'Chain/row=bare/side=gin', 'full100gin': 'Chain/row=full/sample=100/side=gin',
         'full10gin': 'Chain/row=full/sample=10/side=gin', 'sentinel': 'SentinelPkg/Middleware/sentinel',
         'accesslog': 'LoggingPkg/AccessLogJSON', 'ratelimit': 'RatelimitPkg/Middleware/local-per-ip'}
for v in vers:
    with open(d + '/cpu.%s.txt' % v, 'w') as f:
        f.write('goos: linux\ngoarch: amd64\npkg: gingov-step-sentinel-log\n')
        for r in sorted(rows[('bare', v)]):
            for c in cases:
                x = rows[(c, v)][r]
                f.write('Benchmark%s-2 \t %d\t %.0f ns/op\t %.0f cpu-ns/op\t %d B/op\t %d allocs/op\n' % (names[c], N, x[1], x[0], x[2], x[3]))
def med(c, v, i=0):
    return st.median(x[i] for x in rows[(c, v)].values())
for c in cases:
    print('%-11s ' % c + '  '.join('%s cpu %6.0f (B %5d, allocs %3d)' % (v, med(c, v), next(iter(rows[(c, v)].values()))[2], next(iter(rows[(c, v)].values()))[3]) for v in vers))
for c in ['full100kratos', 'full10kratos', 'full100kratos3', 'full10kratos3']:
    print('%-14s s3 cpu %6.0f wall %6.0f (B %5d, allocs %3d)' % (c, med(c, 's3'), med(c, 's3', 1), next(iter(rows[(c, 's3')].values()))[2], next(iter(rows[(c, 's3')].values()))[3]))
print('per-round ratios, median:')
for c in cases:
    print('%-11s ' % c + '  '.join('%s/%s %.3f' % (b, a, st.median(rows[(c, b)][r][0] / rows[(c, a)][r][0] for r in rows[(c, a)])) for a, b in zip(vers, vers[1:])) + '   s3/s0 %.3f' % st.median(rows[(c, 's3')][r][0] / rows[(c, 's0')][r][0] for r in rows[(c, 's0')]))
for s in ['100', '10']:
    for k in ['kratos', 'kratos3']:
        kk = rows[('full%s%s' % (s, k), 's3')]
        print('full@%s%% vs %-7s: ' % (s, k) + '  '.join('%s cpu %.3f wall %.3f' % (v, st.median(rows[('full%sgin' % s, v)][r][0] / kk[r][0] for r in kk),
              st.median(rows[('full%sgin' % s, v)][r][1] / kk[r][1] for r in kk)) for v in vers))
    print('full@%s%% overhead over bare (cpu ns): ' % s + '  '.join('%s %.0f' % (v, st.median(rows[('full%sgin' % s, v)][r][0] - rows[('bare', v)][r][0] for r in rows[('bare', v)])) for v in vers))
