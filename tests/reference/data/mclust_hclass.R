# Produces mclust_hclass.json: mclust's hierarchical partitions, as mclustBIC starts from them
# (hc with mclust.options' hcModelName "VVV" and hcUse "SVD"), K = 2..9. Run with Rscript after
# writing faithful.csv, iris.csv and penguins.csv (no header, 17 significant digits) to
# /tmp/mcl/; penguins are the four measurements of the rows without NA.
suppressMessages(library(mclust))
cat("{\n  \"source\": \"mclust", as.character(packageVersion("mclust")), R.version.string,
    "- tests/reference/data/mclust_hclass.R\",\n  \"partitions\": {\n")
sets <- c("faithful", "iris", "penguins")
for (s in sets) {
  X <- as.matrix(read.csv(sprintf("/tmp/mcl/%s.csv", s), header=FALSE))
  cl <- hclass(hc(X, modelName="VVV", use="SVD"), 2:9)
  cat(sprintf("    \"%s\": {\n", s))
  for (k in 2:9) cat(sprintf("      \"%d\": [%s]%s\n", k, paste(cl[, k - 1], collapse=","),
                            if (k < 9) "," else ""))
  cat(sprintf("    }%s\n", if (s != sets[length(sets)]) "," else ""))
}
cat("  }\n}\n")
