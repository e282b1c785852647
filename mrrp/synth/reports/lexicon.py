"""The report generator's fixed vocabulary: styles, margin statuses, the descriptor phrases per value, BI-RADS
suspicion wording and the Nottingham score ranges."""

from __future__ import annotations

STYLES = ("internal", "external")
MARGIN_STATUSES = ("clear", "close", "involved")

# Descriptor value -> the phrases the generator uses for it, grouped by field (field names and values as in
# mrrp.synth.biology). Every descriptor phrase in a report contains one of these (case-insensitive), so
# tests and docs can check coverage. Match on word boundaries: some phrases contain others
# ("not parallel to the skin" contains "parallel to the skin").
REPORT_LEXICON: dict[str, dict[str, tuple[str, ...]]] = {
    # ultrasound (us_findings_from_latent)
    "laterality": {
        "left": ("left", "L breast", "Lt breast"),
        "right": ("right", "R breast", "Rt breast"),
    },
    "shape": {
        "oval": ("oval", "ovoid", "elliptical"),
        "round": ("round", "rounded"),
        "irregular": ("irregular", "irregularly shaped"),
    },
    "orientation": {
        "parallel": (
            "parallel to the skin",
            "orientation parallel",
            "orientation: parallel",
            "wider-than-tall",
            "wider than tall",
            "horizontally oriented",
        ),
        "not parallel": (
            "not parallel to the skin",
            "non-parallel to the skin",
            "non-parallel",
            "orientation: not parallel",
            "taller-than-wide",
            "taller than wide",
            "vertically oriented",
        ),
    },
    "margin": {
        "circumscribed": ("circumscribed", "well-defined", "sharply defined"),
        "indistinct": ("indistinct", "ill-defined", "poorly defined"),
        "angular": ("angular", "angulated"),
        "microlobulated": ("microlobulated", "microlobulations"),
        "spiculated": ("spiculated", "spiculations"),
    },
    "echo_pattern": {
        "hypoechoic": ("hypoechoic",),
        "heterogeneous": ("heterogeneous", "inhomogeneous", "mixed echogenicity"),
    },
    "posterior": {
        "shadowing": ("posterior acoustic shadowing", "posterior shadowing", "shadowing"),
        "enhancement": (
            "posterior acoustic enhancement",
            "posterior enhancement",
            "posterior features: enhancement",
            "enhanced through-transmission",
        ),
        "no posterior features": (
            "no posterior acoustic features",
            "no posterior features",
            "posterior features: none",
            "without posterior acoustic features",
            "posterior acoustic features are absent",
        ),
    },
    "vascularity": {
        "internal": ("internal vascularity", "internal flow"),
        "peripheral": ("peripheral vascularity", "rim vascularity", "peripheral flow"),
        "absent": ("avascular", "no internal vascularity", "no flow"),
    },
    "axilla": {
        "normal": ("no suspicious", "no morphologically abnormal", "normal-appearing", "unremarkable"),
        "suspicious": ("abnormal axillary", "abnormal node", "cortical thickening"),
    },
    # pathology (clinical_from_latent)
    "histological_type": {
        "invasive carcinoma of no special type": ("no special type", "NST", "invasive ductal carcinoma"),
        "invasive lobular carcinoma": ("lobular", "ILC"),
        "mucinous carcinoma": ("mucinous", "colloid"),
    },
    "lymphovascular_invasion": {
        "yes": (
            "lymphovascular invasion is present",
            "lymphovascular invasion is identified",
            "definite lymphovascular invasion",
            "LVI: present",
            "LVI seen",
        ),
        "no": (
            "lymphovascular invasion is not identified",
            "no lymphovascular invasion",
            "LVI: absent",
            "LVI not seen",
        ),
    },
    "her2": {
        "negative": ("HER2 negative", "HER2-negative", "HER2: negative", "HER2 status: negative", "HER2 NEG"),
    },
    "margin_status": {
        "clear": ("clear",),
        "close": ("close",),
        "involved": ("involved", "at ink"),
    },
}

BIRADS_SUSPICION = {
    "4A": "low suspicion for malignancy",
    "4B": "moderate suspicion for malignancy",
    "4C": "high suspicion for malignancy",
    "5": "highly suggestive of malignancy",
}
# Nottingham total score (tubules + pleomorphism + mitoses, each 1-3) per grade.
NOTTINGHAM_SCORE_RANGE = {1: (3, 5), 2: (6, 7), 3: (8, 9)}


# --- ultrasound wording -------------------------------------------------------------------------------------

# field -> value -> (whole sentences, fragments for a combined sentence). Fragments starting with "with"
# go after the adjectives ("The mass is irregular in shape and hypoechoic, with spiculated margins.").
US_PHRASES: dict[str, dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]]] = {
    "internal": {
        "shape": {
            "oval": (
                ("The mass is oval in shape.", "It has an ovoid shape.", "The lesion is elliptical in configuration."),
                ("oval", "ovoid"),
            ),
            "round": (
                ("The mass is round in shape.", "It has a round configuration.", "The lesion is rounded."),
                ("round",),
            ),
            "irregular": (
                ("The mass is irregular in shape.", "It has an irregular shape.", "The lesion is irregularly shaped."),
                ("irregular in shape", "irregularly shaped"),
            ),
        },
        "orientation": {
            "parallel": (
                (
                    "The mass is oriented parallel to the skin.",
                    "It is wider-than-tall.",
                    "Its long axis lies parallel to the skin surface.",
                    "The lesion is horizontally oriented.",
                ),
                ("parallel to the skin", "wider-than-tall", "horizontally oriented"),
            ),
            "not parallel": (
                (
                    "The mass is not parallel to the skin.",
                    "It is taller-than-wide.",
                    "The lesion is oriented non-parallel to the skin.",
                    "Its long axis is vertically oriented.",
                ),
                ("taller-than-wide", "non-parallel to the skin", "vertically oriented"),
            ),
        },
        "margin": {
            "circumscribed": (
                (
                    "The margins are circumscribed.",
                    "The mass is well circumscribed.",
                    "It has sharply defined margins.",
                ),
                ("with circumscribed margins", "with sharply defined margins"),
            ),
            "indistinct": (
                ("The margins are indistinct.", "The margins are ill-defined.", "It has poorly defined margins."),
                ("with indistinct margins", "with ill-defined margins"),
            ),
            "angular": (
                ("The margins are angular.", "It has angular margins.", "The margins are angulated."),
                ("with angular margins",),
            ),
            "microlobulated": (
                (
                    "The margins are microlobulated.",
                    "It has microlobulated margins.",
                    "Small microlobulations are seen along the margin.",
                ),
                ("with microlobulated margins",),
            ),
            "spiculated": (
                (
                    "The margins are spiculated.",
                    "It has spiculated margins.",
                    "The mass is seen with spiculations radiating into the surrounding tissue.",
                ),
                ("with spiculated margins", "with spiculations"),
            ),
        },
        "echo_pattern": {
            "hypoechoic": (
                (
                    "It is hypoechoic relative to the subcutaneous fat.",
                    "The mass is hypoechoic.",
                    "The echo pattern is hypoechoic.",
                ),
                ("hypoechoic",),
            ),
            "heterogeneous": (
                (
                    "The internal echo pattern is heterogeneous.",
                    "It shows an inhomogeneous echotexture.",
                    "The mass is of mixed echogenicity.",
                ),
                ("heterogeneous", "of mixed echogenicity"),
            ),
        },
        "posterior": {
            "shadowing": (
                (
                    "There is posterior acoustic shadowing.",
                    "Posterior acoustic shadowing is present.",
                    "The mass shows posterior shadowing.",
                ),
                ("with posterior acoustic shadowing", "with posterior shadowing"),
            ),
            "enhancement": (
                (
                    "There is posterior acoustic enhancement.",
                    "Posterior enhancement is noted.",
                    "There is enhanced through-transmission.",
                ),
                ("with posterior acoustic enhancement",),
            ),
            "no posterior features": (
                (
                    "There are no posterior acoustic features.",
                    "No posterior features are seen.",
                    "Posterior acoustic features are absent.",
                ),
                ("without posterior acoustic features",),
            ),
        },
    },
    "external": {
        "shape": {
            v: ((f"Shape {v}.", f"{v.capitalize()} shape.", f"Shape: {v}."), (f"{v} shape",))
            for v in ("oval", "round", "irregular")
        },
        "orientation": {
            "parallel": (
                ("Orientation parallel.", "Orientation: parallel.", "Wider than tall."),
                ("orientation parallel", "wider than tall"),
            ),
            "not parallel": (
                ("Orientation non-parallel.", "Orientation: not parallel.", "Taller than wide."),
                ("non-parallel", "taller than wide"),
            ),
        },
        "margin": {
            "circumscribed": (("Margins circumscribed.", "Margin: well-defined."), ("circumscribed margins",)),
            "indistinct": (("Margins indistinct.", "Margin: ill-defined."), ("ill-defined margins",)),
            "angular": (("Margins angular.", "Margin: angular."), ("angular margins",)),
            "microlobulated": (("Margins microlobulated.", "Margin: microlobulated."), ("microlobulated margins",)),
            "spiculated": (
                ("Margins spiculated.", "Margin: spiculated.", "With spiculations."),
                ("spiculated margins",),
            ),
        },
        "echo_pattern": {
            "hypoechoic": (("Hypoechoic.", "Echo pattern: hypoechoic.", "Hypoechoic lesion."), ("hypoechoic",)),
            "heterogeneous": (
                ("Heterogeneous echotexture.", "Echo pattern: heterogeneous.", "Inhomogeneous echotexture."),
                ("heterogeneous",),
            ),
        },
        "posterior": {
            "shadowing": (
                ("Posterior shadowing.", "Posterior acoustic shadowing.", "Posterior features: shadowing."),
                ("posterior shadowing",),
            ),
            "enhancement": (
                ("Posterior enhancement.", "Posterior features: enhancement."),
                ("posterior enhancement",),
            ),
            "no posterior features": (
                ("No posterior features.", "Posterior features: none."),
                ("no posterior features",),
            ),
        },
    },
}
# Adjectives that fit "a ... mass" (the "inline" grouping of the internal style).
US_ADJECTIVES = {
    "shape": {"oval": ("oval", "ovoid"), "round": ("round",), "irregular": ("irregular",)},
    "echo_pattern": {"hypoechoic": ("hypoechoic",), "heterogeneous": ("heterogeneous",)},
}
DESCRIPTOR_ORDERS = (
    ("shape", "orientation", "margin", "echo_pattern", "posterior"),
    ("shape", "margin", "orientation", "echo_pattern", "posterior"),
    ("margin", "shape", "echo_pattern", "orientation", "posterior"),
    ("echo_pattern", "shape", "margin", "posterior", "orientation"),
)
VASCULARITY_TEXT = {
    "internal": {
        "internal": (
            "Colour Doppler shows internal vascularity.",
            "Internal vascularity is present on Doppler imaging.",
        ),
        "peripheral": ("Colour Doppler shows peripheral vascularity only.", "There is rim vascularity on Doppler."),
        "absent": ("No internal vascularity is seen on colour Doppler.", "The mass is avascular on Doppler imaging."),
    },
    "external": {
        "internal": ("Doppler: internal flow.", "Internal vascularity on Doppler."),
        "peripheral": ("Doppler: peripheral flow.", "Rim vascularity."),
        "absent": ("Doppler: no flow.", "Avascular."),
    },
}
AXILLA_TEXT = {
    "internal": {
        "normal": (
            "The {side} axilla shows no morphologically abnormal lymph nodes.",
            "There is no suspicious axillary lymphadenopathy.",
            "Axillary lymph nodes are normal-appearing with preserved fatty hila.",
        ),
        "suspicious": (
            "A {side} axillary lymph node shows cortical thickening and is considered suspicious.",
            "There is an abnormal axillary lymph node with effacement of the fatty hilum.",
        ),
    },
    "external": {
        "normal": ("Axilla: no suspicious nodes.", "Axilla unremarkable."),
        "suspicious": ("Axilla: abnormal node, cortical thickening.", "Abnormal axillary node, cortex thickened."),
    },
}


# --- pathology wording --------------------------------------------------------------------------------------

TYPE_TEXT = {
    "internal": {
        "invasive carcinoma of no special type": (
            "invasive carcinoma of no special type",
            "invasive breast carcinoma of no special type (NST)",
            "invasive ductal carcinoma (no special type)",
        ),
        "invasive lobular carcinoma": ("invasive lobular carcinoma", "invasive lobular carcinoma, classic type"),
        "mucinous carcinoma": ("mucinous carcinoma", "invasive mucinous (colloid) carcinoma"),
    },
    "external": {
        "invasive carcinoma of no special type": (
            "IDC NST",
            "invasive ductal carcinoma, NST",
            "invasive carcinoma NST",
        ),
        "invasive lobular carcinoma": ("ILC", "invasive lobular carcinoma", "ILC, classic"),
        "mucinous carcinoma": ("mucinous carcinoma", "colloid carcinoma"),
    },
}
GROSS_TUMOUR = {
    "invasive carcinoma of no special type": "a firm, grey-white, stellate tumour",
    "invasive lobular carcinoma": "a poorly circumscribed firm area",
    "mucinous carcinoma": "a well-circumscribed, gelatinous tumour",
}
MICRO_TYPE = {
    "invasive carcinoma of no special type": "Sections show an invasive carcinoma forming tubules, nests and cords.",
    "invasive lobular carcinoma": "Sections show discohesive tumour cells infiltrating in single files.",
    "mucinous carcinoma": "Sections show clusters of tumour cells floating in pools of extracellular mucin.",
}
