# Makes the feature repo importable as `registry._feature_repo` in the wheel, so an installed shopscore finds
# its default declarations. shopscore's loader skips files starting with "_", so this adds no Feast objects.
