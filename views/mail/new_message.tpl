Subject: [#{{TICKET}}] New message: {{SUBJECT}}

{{NAME}} wrote on ticket #{{TICKET}}:

{{BODY}}
{{#ATTACHMENT}}
Attached: {{NAME}} ({{SIZE}})
  {{URL}}
{{/ATTACHMENT}}

Reply here:

  {{BASE_URL}}/tickets/{{TICKET}}

(Further messages are not mailed until you open the ticket.)

-- 
{{SITE_NAME}}
