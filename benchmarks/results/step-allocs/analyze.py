#!/usr/bin/env python3
# paired.py FILE: medians per case/binary/side of cpu-ns/op and ns/op; per-round
# ratios gin(new)/kratos, gin(new)/kratos3, gin(base)/kratos*, and new/base.
import sys, re, statistics as st
from collections import defaultdict
rows = defaultdict(lambda: defaultdict(dict))  # round -> (case,bin,side) -> metrics
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) < 4 or not f[2].startswith('BenchmarkKratos'): continue
    rnd, binary, name = f[0], f[1], f[2]
    m = {}
    for i in range(4, len(f) - 1, 2):
        m[f[i+1]] = float(f[i])
    name = re.sub(r'-\d+$', '', name)
    case, side = name.replace('BenchmarkKratos/', '').rsplit('/side=', 1)
    case = case.replace('/mode=serial', '').replace('/mode=parallel', ' par')
    rows[rnd][(case, binary, side)] = m
cases = sorted({k[0] for r in rows.values() for k in r})
bins = sorted({k[1] for r in rows.values() for k in r})
new = [b for b in bins if b != 'bench.base'][0]
def med(xs): return st.median(xs) if xs else float('nan')
for unit in ('cpu-ns/op', 'ns/op'):
    print(f'-- {unit} ({len(rows)} rounds; medians; ratios are medians of per-round ratios [min-max])')
    for c in cases:
        def vals(b, s): return [r[(c, b, s)][unit] for r in rows.values() if (c, b, s) in r]
        def rat(b1, s1, b2, s2):
            xs = [r[(c, b1, s1)][unit] / r[(c, b2, s2)][unit] for r in rows.values() if (c, b1, s1) in r and (c, b2, s2) in r]
            return f'{med(xs):.2f}x [{min(xs):.2f}-{max(xs):.2f}]' if xs else '-'
        allocs = lambda b, s: next((int(r[(c, b, s)]['allocs/op']) for r in rows.values() if (c, b, s) in r), 0)
        print(f'{c:20s} gin base {med(vals("bench.base","gin")):7.0f} ({allocs("bench.base","gin")}a)  new {med(vals(new,"gin")):7.0f} ({allocs(new,"gin")}a)  '
              f'kratos {med(vals(new,"kratos")):7.0f} ({allocs(new,"kratos")}a)  kratos3 {med(vals(new,"kratos3")):7.0f} ({allocs(new,"kratos3")}a)')
        print(f'{"":20s} new/base {rat(new,"gin","bench.base","gin")}  base/v2 {rat("bench.base","gin",new,"kratos")}  base/v3 {rat("bench.base","gin",new,"kratos3")}  '
              f'new/v2 {rat(new,"gin",new,"kratos")}  new/v3 {rat(new,"gin",new,"kratos3")}')
