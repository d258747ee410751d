"""Match two images with a trained SuperPoint: a PNG with the matches and the RANSAC homography's inliers.

    python match.py IMAGE_A IMAGE_B ckpt_path=PATH [out=matches.png] [max_keypoints=1000]
    python match.py IMAGE_A IMAGE_B weights=superpoint_photos threshold=0.005

The same as the installed ``pixelwise-match`` command; the code and every option are in
``pixelwise.match_cli``.
"""

from pixelwise.match_cli import main

if __name__ == "__main__":
    main()
