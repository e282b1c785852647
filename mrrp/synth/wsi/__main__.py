from mrrp.synth.wsi.slide import main

main()
