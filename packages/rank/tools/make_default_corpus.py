"""Generate certkit.rank's embedded default collection (deterministic; rerun to rebuild).

40 topics, each with core vocabulary and two facets. Documents are templated sentences
mixing a topic's core words, one facet's words, words shared with neighbouring topics and
general filler; some documents span two topics. Each query asks about one facet of one
topic, partly in words the documents do not use (vocabulary mismatch), so BM25 is
clearly better than random but far from perfect. Graded qrels: 2 = the query's topic and
facet, 1 = the topic's other facet or a two-topic document touching the topic.

    python packages/rank/tools/make_default_corpus.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

# topic: (core words, facet A words, facet B words, query A, query B)
TOPICS = [
    ("solar panel photovoltaic cell sunlight", "efficiency silicon conversion output", "installation roof cost mounting", "how efficient are silicon solar cells", "cost of putting solar panels on a house roof"),
    ("coral reef ocean bleaching marine", "temperature warming heat stress", "fish habitat species diversity", "ocean warming causes coral bleaching", "fish species living on coral reefs"),
    ("vaccine immune antibody dose injection", "trial safety side effects", "children schedule booster clinic", "safety trials for a new vaccine", "booster schedule for children"),
    ("river flood rainfall water levee", "warning forecast gauge alert", "damage homes insurance recovery", "flood forecasting and early warning", "insurance after river flooding damage homes"),
    ("bread dough yeast flour oven", "sourdough starter fermentation rise", "crust baking temperature steam", "sourdough fermentation of dough", "oven temperature for a crisp crust"),
    ("bicycle tyre gear chain wheel", "puncture repair tube pump", "shifting derailleur cable adjustment", "repair a punctured bike tube", "adjust gear shifting on a bicycle"),
    ("volcano eruption lava magma ash", "prediction seismic monitoring gas", "evacuation village aviation cloud", "monitoring volcanoes to predict eruptions", "ash clouds and aviation safety"),
    ("honey bee colony hive pollen", "decline pesticide loss mites", "beekeeping harvest frames wax", "why bee colonies are declining", "harvesting honey from hive frames"),
    ("chess opening endgame board pieces", "gambit defence tactics sacrifice", "king pawn rook technique", "aggressive chess opening gambits", "rook and pawn endgame technique"),
    ("glacier ice melting mountain alpine", "retreat measurement satellite mass", "meltwater lake downstream supply", "satellite measurement of glacier retreat", "meltwater supply for downstream towns"),
    ("coffee bean roast espresso brew", "grinder grind size extraction", "farm harvest altitude arabica", "grind size and espresso extraction", "arabica coffee farms at high altitude"),
    ("battery lithium charge electrode cell", "capacity degradation cycle lifetime", "recycling metals cobalt recovery", "battery capacity loss over charge cycles", "recycling lithium batteries to recover cobalt"),
    ("whale migration ocean pod song", "feeding krill summer waters", "calves breeding warm lagoons", "what whales eat in summer", "where whales give birth to calves"),
    ("sleep insomnia night rest brain", "melatonin light screens circadian", "memory learning dreams consolidation", "screens and light disrupt sleep", "sleep helps memory and learning"),
    ("wildfire forest fire smoke blaze", "drought fuel wind spread", "smoke air quality health lungs", "drought and wind spread wildfires", "wildfire smoke harms lung health"),
    ("telescope star galaxy astronomy light", "mirror lens aperture optics", "exoplanet planet transit orbit", "telescope mirror and aperture size", "finding exoplanets by transit"),
    ("earthquake fault seismic tremor quake", "magnitude scale energy measurement", "building code retrofit collapse", "how earthquake magnitude is measured", "retrofit buildings against collapse in earthquakes"),
    ("wine grape vineyard fermentation cellar", "barrel oak ageing flavour", "harvest pruning vine soil", "ageing wine in oak barrels", "pruning vines in the vineyard"),
    ("train railway track station locomotive", "signal safety braking collision", "timetable passenger delay punctuality", "railway signalling prevents collisions", "passenger train delays and timetables"),
    ("tomato garden plant seed soil", "compost fertiliser nutrient growth", "pest aphid blight disease", "compost and fertiliser for tomato plants", "blight disease on tomato plants"),
    ("password security account login encryption", "phishing email attack scam", "hashing storage salt database", "phishing emails steal passwords", "salted hashing of stored passwords"),
    ("marathon runner race training distance", "injury knee stretching recovery", "pace nutrition hydration energy", "knee injury recovery for runners", "hydration and pace during a marathon"),
    ("dinosaur fossil bone skeleton excavation", "extinction asteroid impact crater", "feathers bird evolution ancestor", "asteroid impact and dinosaur extinction", "birds evolved from feathered dinosaurs"),
    ("piano keyboard music practice chord", "scales fingers technique exercise", "sheet notation reading rhythm", "finger exercises and scales on piano", "reading sheet music rhythm"),
    ("antibiotic bacteria infection resistance drug", "overuse prescription misuse spread", "discovery mould penicillin research", "overuse of antibiotics breeds resistance", "discovery of penicillin from mould"),
    ("desert sand dune arid camel", "water oasis survival scarcity", "temperature night cold extreme", "finding water in the desert", "cold desert nights"),
    ("printer ink paper cartridge print", "jam feed tray roller", "colour quality resolution nozzle", "paper jam in the printer tray", "print colour quality and clogged nozzles"),
    ("forest tree logging timber wood", "deforestation clearing rainforest loss", "replanting sapling restoration growth", "clearing of tropical rainforest", "replanting saplings to restore forest"),
    ("cheese milk curd dairy rennet", "ageing cave rind mould", "goat sheep farm pasture", "ageing cheese in caves", "cheese from goat and sheep milk"),
    ("satellite orbit launch rocket space", "debris collision junk tracking", "communication signal antenna broadband", "tracking space debris to avoid collision", "satellite broadband communication signals"),
    ("language child vocabulary speech grammar", "bilingual second acquisition learning", "delay therapy speaking difficulty", "children learning a second language", "speech delay therapy for toddlers"),
    ("mushroom fungus forest spore mycelium", "poisonous toxic identification foraging", "cultivation substrate growing logs", "identifying poisonous mushrooms when foraging", "growing mushrooms on logs"),
    ("wind turbine blade energy power", "offshore sea foundation installation", "noise bird wildlife impact", "offshore wind turbine foundations", "wind turbines and bird deaths"),
    ("salt road winter ice snow", "corrosion car rust damage", "runoff streams freshwater pollution", "road salt corrodes cars", "salt runoff pollutes freshwater streams"),
    ("library book reader loan catalogue", "digital ebook online lending", "archive rare manuscript preservation", "borrowing ebooks from a library online", "preserving rare manuscripts in archives"),
    ("octopus squid tentacle cephalopod ink", "intelligence puzzle learning problem", "camouflage skin colour pattern", "octopus intelligence and problem solving", "how octopus skin changes colour"),
    ("concrete cement building aggregate structure", "cracking curing shrinkage strength", "emissions carbon kiln clinker", "why concrete cracks while curing", "carbon emissions of cement kilns"),
    ("tea leaf brew green cup", "caffeine antioxidants health benefits", "plantation picking estate hills", "health benefits of green tea antioxidants", "tea plantations in the hills"),
    ("parrot bird feather beak cage", "mimicry talking words vocal", "diet seeds fruit nutrition", "parrots mimic human words", "healthy diet for pet parrots"),
    ("bridge span steel cable suspension", "wind oscillation resonance collapse", "inspection maintenance corrosion paint", "wind oscillation and bridge collapse", "bridge inspection and maintenance"),
]

SHARED = ["energy", "water", "health", "safety", "growth", "damage", "research", "study", "temperature",
          "cost", "quality", "season", "local", "system", "design", "process", "method", "change"]
FILLER = ("the a this that many some several new recent common important typical small large "
          "often usually rarely sometimes also further however while because during after before "
          "people experts researchers engineers farmers owners visitors scientists workers").split()
VERBS = "shows explains describes reports examines affects improves reduces increases requires depends involves".split()
TEMPLATES = [
    "{F} {c1} {c2} {V} {a1} and {a2} in {F} {c3} {s1}",
    "{F} {s1} of {c1} {V} {a1} {a2} and {a3} for {F} {c2}",
    "{F} {a1} {V} {F} {c1} when {a2} {V} {c3} {s1}",
    "a {s1} of {c2} and {a1} {V} how {a2} {V} {c1}",
    "{F} {c1} {c3} {V} {s2} {a3} with {a1} {F} {s1}",
]


def _sentence(rng: random.Random, core: list[str], facet: list[str]) -> str:
    t = rng.choice(TEMPLATES)
    c = rng.sample(core, 3)
    a = rng.sample(facet, 3)
    s = rng.sample(SHARED, 2)
    return t.format(F=rng.choice(FILLER), V=rng.choice(VERBS), c1=c[0], c2=c[1], c3=c[2],
                    a1=a[0], a2=a[1], a3=a[2], s1=s[0], s2=s[1]).replace("  ", " ")


def main() -> None:
    rng = random.Random(20240601)
    out = Path(__file__).resolve().parents[1] / "src" / "certkit" / "rank" / "data"
    docs: list[dict[str, str]] = []
    meta: list[tuple[int, int | None, int | None]] = []  # (topic, facet or None, 2nd topic)
    for ti, (core, fa, fb, _qa, _qb) in enumerate(TOPICS):
        core_w, facets = core.split(), (fa.split(), fb.split())
        for j in range(9):
            f = j % 2 if j < 8 else None
            sents = []
            for _ in range(rng.randint(2, 4)):
                facet = facets[f] if f is not None else facets[rng.randint(0, 1)]
                sents.append(_sentence(rng, core_w, facet))
            docs.append({"text": " . ".join(sents) + " ."})
            meta.append((ti, f, None))
    # two-topic documents: mostly topic A, one sentence of topic B
    for _ in range(60):
        ta, tb = rng.sample(range(len(TOPICS)), 2)
        ca, fa_, _fb, _, _ = TOPICS[ta]
        cb, fb_, _, _, _ = TOPICS[tb]
        sents = [_sentence(rng, ca.split(), fa_.split()) for _ in range(2)]
        sents.append(_sentence(rng, cb.split(), fb_.split()))
        rng.shuffle(sents)
        docs.append({"text": " . ".join(sents) + " ."})
        meta.append((ta, 0, tb))
    order = list(range(len(docs)))
    rng.shuffle(order)
    docs = [docs[i] for i in order]
    meta = [meta[i] for i in order]
    for i, d in enumerate(docs):
        d["_id"] = f"d{i:03d}"
    queries, qrels = [], []
    for ti, (_core, _fa, _fb, qa, qb) in enumerate(TOPICS):
        f = ti % 2
        qid = f"q{ti + 1:02d}"
        queries.append({"_id": qid, "text": (qa, qb)[f]})
        for d, (t, fd, t2) in zip(docs, meta, strict=True):
            if t == ti and t2 is None:
                rel = 2 if fd == f else 1
            elif t == ti and t2 is not None:
                rel = 2 if fd == f else 1
            elif t2 == ti:
                rel = 1 if f == 1 else 0
            else:
                continue
            if rel > 0:
                qrels.append((qid, d["_id"], rel))
    with open(out / "default_corpus.jsonl", "w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps({"_id": d["_id"], "text": d["text"]}) + "\n")
    with open(out / "default_queries.jsonl", "w", encoding="utf-8") as fh:
        for q in queries:
            fh.write(json.dumps(q) + "\n")
    with open(out / "default_qrels.tsv", "w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for q, d, r in qrels:
            fh.write(f"{q}\t{d}\t{r}\n")
    print(len(docs), "documents,", len(queries), "queries,", len(qrels), "judgements")


if __name__ == "__main__":
    main()
