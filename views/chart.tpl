{{%AUTOESCAPE context="HTML"}}
<figure class="chart" aria-labelledby="{{CHART_ID}}-cap">
<svg class="chart-svg" viewBox="0 0 {{W}} {{H}}" role="img" aria-labelledby="{{CHART_ID}}-title {{CHART_ID}}-desc" preserveAspectRatio="xMidYMid meet">
<title id="{{CHART_ID}}-title">{{CHART_TITLE}}</title>
<desc id="{{CHART_ID}}-desc">{{CHART_DESC}}</desc>
<g class="chart-grid">
{{#TICK}}
<line x1="{{X0}}" y1="{{TY}}" x2="{{X1}}" y2="{{TY}}"></line>
{{/TICK}}
</g>
<g class="chart-axis">
<line x1="{{X0}}" y1="{{YTOP}}" x2="{{X0}}" y2="{{Y0}}"></line>
<line x1="{{X0}}" y1="{{Y0}}" x2="{{X1}}" y2="{{Y0}}"></line>
</g>
<g class="chart-labels">
{{#TICK}}
<text x="{{TX}}" y="{{TLY}}" text-anchor="end">{{TLABEL}}</text>
{{/TICK}}
{{#XLABEL}}
<text x="{{XX}}" y="{{XY}}" text-anchor="middle">{{XTEXT}}</text>
{{/XLABEL}}
<text x="54" y="12" class="chart-unit">{{UNIT}}</text>
</g>
<g class="chart-bars">
{{#BAR}}
<rect class="{{SERIES}}" x="{{BX}}" y="{{BY}}" width="{{BW}}" height="{{BH}}"><title>{{BLABEL}}</title></rect>
{{/BAR}}
</g>
{{#LINE}}
<polyline class="chart-line" points="{{POINTS}}"></polyline>
{{/LINE}}
</svg>
<figcaption id="{{CHART_ID}}-cap"><span class="legend legend-a">{{LEGEND_A}}</span>{{#HAS_LEGEND_B}} <span class="legend {{LEGEND_B_CLASS}}">{{LEGEND_B}}</span>{{/HAS_LEGEND_B}}</figcaption>
</figure>
