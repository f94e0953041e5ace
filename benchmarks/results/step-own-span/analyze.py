import statistics as st, collections, sys
N=100000
d=sys.argv[1] if len(sys.argv)>1 else '.'
cal=collections.defaultdict(list)
for l in open(d+'/cal.txt'):
    b,c,u,s,*_=l.split(); cal[(b,c)].append(float(u)+float(s))
rows=collections.defaultdict(list)
for l in open(d+'/cpu.txt'):
    b,c,u,s,ns,bop,al=l.split()
    v=b.split('.')[1]
    cpu=(float(u)+float(s)-st.mean(cal[(b,c)]))/N*1e9
    rows[(c,v)].append((cpu,float(ns),int(bop),int(al)))
cases=['bare','full100gin','full10gin','full100kratos','full10kratos','tbare','trc100','trc10']
for c in cases:
    for v in ['old','new']:
        r=rows[(c,v)]
        print("%-14s %-4s cpu %6.0f wall %6.0f B %6d allocs %3d | %s"%(c,v,st.median(x[0] for x in r),st.median(x[1] for x in r),r[0][2],r[0][3],' '.join('%.0f'%x[0] for x in r)))
for c in cases:
    ro=[n[0]/o[0] for o,n in zip(rows[(c,'old')],rows[(c,'new')])]
    print("%-14s new/old cpu median %.2f"%(c,st.median(ro)))
for v in ['old','new']:
  for s in ['100','10']:
    g=[x[0] for x in rows[('full%sgin'%s,v)]]; k=[x[0] for x in rows[('full%skratos'%s,v)]]; b=[x[0] for x in rows[('bare',v)]]
    gw=[x[1] for x in rows[('full%sgin'%s,v)]]; kw=[x[1] for x in rows[('full%skratos'%s,v)]]
    print(v, s, 'gin/kratos cpu median %.2f (%s)'%(st.median([a/bb for a,bb in zip(g,k)]),' '.join('%.2f'%(a/bb) for a,bb in zip(g,k))),
      'overhead cpu %.0f'%st.median([a-bb for a,bb in zip(g,b)]), 'bare %.0f'%st.median(b), 'wall ratio %.2f'%st.median([a/bb for a,bb in zip(gw,kw)]))
