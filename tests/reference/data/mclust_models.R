# Produces the reference values in mclust_models.json (see its "source"): run with Rscript
# after writing faithful.csv and iris.csv (no header) to /tmp/mcl/; the CSVs it writes were
# collected into the JSON.
suppressMessages(library(mclust))
models <- c("EII","VII","EEI","VEI","EVI","VVI","EEE","VEE","EVE","VVE","EEV","VEV","EVV","VVV")
out <- file("/tmp/mcl/mclust_loglik.csv", "w")
writeLines("dataset,model,K,loglik,bic,df", out)
for (ds in c("faithful","iris")) {
  X <- as.matrix(read.csv(sprintf("/tmp/mcl/%s.csv", ds), header=FALSE))
  for (m in models) for (k in 1:6) {
    fit <- tryCatch(Mclust(X, G=k, modelNames=m, verbose=FALSE), error=function(e) NULL)
    if (is.null(fit)) { writeLines(sprintf("%s,%s,%d,NA,NA,NA", ds, m, k), out); next }
    writeLines(sprintf("%s,%s,%d,%.10f,%.10f,%d", ds, m, k, fit$loglik, fit$bic, fit$df), out)
  }
  t <- system.time(b <- mclustBIC(X, G=1:9, verbose=FALSE))
  write.csv(as.data.frame(unclass(b)[,]), sprintf("/tmp/mcl/%s_mclustBIC.csv", ds))
  cat(ds, "mclustBIC elapsed", t[["elapsed"]], "\n")
  print(summary(b))
}
close(out)
p <- file("/tmp/mcl/nparams.csv","w"); writeLines("model,d,G,n", p)
for (m in models) for (d in c(1,2,3,4,7)) for (G in c(1,2,5)) writeLines(sprintf("%s,%d,%d,%d", m, d, G, nMclustParams(m, d, G)), p)
close(p)
cat(as.character(packageVersion("mclust")), R.version.string, "\n")
