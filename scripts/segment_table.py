import json, statistics as st, sys, os
groups=[("conv + local attention + GRU + global attention (S10)","full"),("without local attention","no-local"),("without global attention","no-global"),("conv + GRU only","neither")]
def ms(v):
    return f"{st.mean(v):.2f} ± {st.stdev(v):.2f}" if len(v)>1 else f"{v[0]:.2f}"
for name,pre in groups:
    reps=[];secs=[]
    for s in (1,2,3):
        d=f"runs/segmenter/{pre}-s{s}"
        if os.path.exists(d+"/report.json"):
            reps.append(json.load(open(d+"/report.json")))
            secs.append(json.load(open(d+"/segmenter.json"))["provenance"]["seconds"])
    if not reps: continue
    f=lambda k: [r[k] for r in reps]
    print(f"| {name} | {len(reps)} | {ms(f('frame_accuracy'))} | {ms(f('edit'))} | {ms([r['f1'][0] for r in reps])} | {ms([r['f1'][1] for r in reps])} | {ms([r['f1'][2] for r in reps])} | {', '.join(str(r['boundary_segments'][1]) for r in reps)} | {ms([r['boundary_error_s'][0] for r in reps])} / {ms([r['boundary_error_s'][1] for r in reps])} | {st.mean(secs):.0f} |")
