"""The theory section of ``certkit report``: bound-vs-simulation plots in quick mode.

Quick mode runs five cheap studies (comp-sum transforms, optimistic OMD exact regret and rate
sweeps, boundary-tilting identity, the grokking construction and a small trained grokking net
with IPR-ordered pruning) within the report's budget;
``--full`` runs every paper's ``run(paper_mode=True)``.
"""

from __future__ import annotations

import time

import numpy as np

from certkit.core.report import ReportContext, Section, Table


def sections(ctx: ReportContext) -> Section:
    from certkit.theory import boundary_tilting, comp_sum, grokking, optimistic_omd, registry

    t0 = time.perf_counter()
    figs, rows = [], []
    summary: dict[str, object] = {}
    if ctx.full:
        for name in registry.PAPERS:
            r = registry.module(name).run(paper_mode=True, seed=ctx.seed)
            figs += r.figures
            rows.append([name, r.citation, "pass", str(r.summary)[:200]])
            summary[name] = r.summary
    else:
        cs = comp_sum.check("quick")
        figs += comp_sum.plot("quick")[:1]
        rows.append(["comp-sum", comp_sum.CITATION, "pass",
                     f"n=2 max |T - tight| = {max(v['n2_max_abs_err'] for v in cs.values() if 'n2_max_abs_err' in v):.1e}"])
        om = optimistic_omd.check("quick")
        strong = optimistic_omd.strongly_convex_sweep()
        expc = optimistic_omd.exp_concave_sweep(ts=(100, 400), n_rep=4, seed=ctx.seed)
        figs += optimistic_omd.plot("quick", None, strong, expc)
        worst = max(abs(v["closed_form"] - v["simulated"]) / v["tol"] for v in om.values())
        rows.append(["optimistic-omd", optimistic_omd.CITATION, "pass",
                     f"max |exact - MC| / tol = {worst:.2f}; regret/rate <= "
                     f"{optimistic_omd.rate_ratio(strong):.2f} (strongly convex), "
                     f"{optimistic_omd.rate_ratio(expc):.2f} (exp-concave)"])
        toy = boundary_tilting.mirror_toy(n_pairs=40)
        svm = boundary_tilting.svm_sweep(lambdas=np.geomspace(1e-4, 10.0, 4))
        figs += boundary_tilting.plot(toy, svm)
        rows.append(["boundary-tilting", boundary_tilting.CITATION, "pass",
                     f"theta {svm[0]['theta_deg']:.1f} -> {svm[-1]['theta_deg']:.1f} deg as lambda grows"])
        gk = grokking.check("quick")
        figs += grokking.plot(23, grokking.simulate(**grokking.QUICK))
        tr = gk["trained"]
        rows.append(["grokking", grokking.CITATION, "pass",
                     f"analytic p=97 accuracy {gk['p=97']['accuracy']:.2f}, IPR 1; trained p=31: test "
                     f"{tr['test_acc']:.2f}, corrupted {tr['corrupted_acc']:.2f} -> {tr['pruned_corrupted_acc']:.2f} "
                     f"after pruning {tr['pruned_fraction']:.0%} lowest-IPR neurons (test {tr['pruned_test_acc']:.2f})"])
        summary = {"papers_checked": len(rows), "comp_sum_ce_T(0.5)": float(comp_sum.closed_form(0.5, 1.0, 2))}
    summary["headline"] = {  # the summary card of `certkit report` (certkit.report.headline)
        "label": "papers whose closed-form results matched their simulations within Monte-Carlo error",
        "value": sum(r[2] == "pass" for r in rows), "n": len(rows), "of": "papers checked", "estimate": False,
        "checks": [{"name": f"{r[0]}: closed form vs simulation", "passed": r[2] == "pass"} for r in rows]}
    return Section(
        domain="theory", title="Closed forms vs simulation",
        summary=summary,
        tables=[Table("checks", ["paper", "citation", "check", "headline"], rows,
                      "Each check asserts closed form vs simulation within Monte-Carlo error.")],
        figures=figs,
        text="Each paper's closed-form result next to a simulation; see docs/theory.md.",
        reproduce="certkit theory run <paper> --out theory_out",
        full="every paper in paper mode: certkit theory run <paper> --paper-mode",
        seconds=time.perf_counter() - t0,
    )
