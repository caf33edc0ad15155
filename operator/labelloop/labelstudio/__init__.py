"""The one place where labelloop talks to Label Studio.

`client` (LabelStudioClient, over label-studio-sdk) is every call the operator and the local
runner make; `ml_backend` speaks the ML backend protocol to prelabel servers; `models` and
`errors` are what both return and raise. Import from the module you need: the SDK (and the
pandas it imports) take seconds to load, which the loop's pure policy, needing only `models`,
never pays.
"""
